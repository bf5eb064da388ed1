// Package testkit holds what the tests of every package share: waiting for a
// condition with a deadline (never a sleep as synchronisation), a fake clock, a
// goroutine-safe log buffer and this machine's non-loopback address.
package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10ms until it holds, and fails the test if it does not
// within timeout. what names the condition in the failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitForDiag(t, timeout, what, cond, nil)
}

// WaitForDiag is WaitFor that adds diag's text to the failure: the logs or state
// that tell why the condition did not hold. diag runs only on a timeout; nil adds
// nothing.
func WaitForDiag(t testing.TB, timeout time.Duration, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if diag == nil {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
			t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, diag())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
