// Package testkit holds what the tests of every package share: waiting for a
// condition with a deadline (never a sleep as synchronisation), a fake clock and a
// goroutine-safe log buffer.
package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10ms until it holds, and fails the test if it does not
// within timeout. what names the condition in the failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
