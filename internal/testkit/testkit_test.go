package testkit

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fatalRecorder stands in for the test given to WaitFor: Fatalf records the failure
// and ends the goroutine, as testing.T's does.
type fatalRecorder struct {
	testing.TB
	failure string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failureOf runs WaitForDiag on its own goroutine and returns how it failed the
// test, "" if it did not.
func failureOf(t *testing.T, cond func() bool, diag func() string) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitForDiag(r, 50*time.Millisecond, "the condition", cond, diag)
	}()
	<-done
	return r.failure
}

func TestWaitFor(t *testing.T) {
	never := func() bool { return false }
	tests := []struct {
		name string
		cond func() bool
		diag func() string
		want string // the failure; "" for none
	}{
		{"a condition that never holds fails the test", never, nil,
			"timed out after 50ms waiting for the condition"},
		{"the failure carries the diagnostic", never, func() string { return "the logs" },
			"timed out after 50ms waiting for the condition\nthe logs"},
		{"a condition that holds at once passes", func() bool { return true },
			func() string { t.Error("diag ran though the condition held"); return "" }, ""},
		{"a condition that holds after a few polls passes", afterCalls(3), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failureOf(t, tt.cond, tt.diag); got != tt.want {
				t.Errorf("failure = %q, want %q", got, tt.want)
			}
		})
	}
}

// afterCalls returns a condition that holds from its n-th call on.
func afterCalls(n int) func() bool {
	calls := 0
	return func() bool { calls++; return calls >= n }
}

// TestClockConcurrent: goroutines that move and read the clock at once race with
// nothing (run with -race) and lose no step.
func TestClockConcurrent(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(start)
	const movers, steps = 8, 100
	var wg sync.WaitGroup
	for range movers {
		wg.Go(func() {
			for range steps {
				c.Advance(time.Second)
				if c.Now().Before(start) {
					t.Error("the clock went back")
				}
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(movers*steps*time.Second); !got.Equal(want) {
		t.Errorf("Now() = %s, want %s", got, want)
	}
	c.Advance(-time.Hour)
	if got, want := c.Now(), start.Add(movers*steps*time.Second-time.Hour); !got.Equal(want) {
		t.Errorf("after Advance(-1h) Now() = %s, want %s", got, want)
	}
}

// TestBufferConcurrent: goroutines that write while the test reads race with
// nothing (run with -race) and lose no line; the zero value is ready to use.
func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	const writers, lines = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				if _, err := fmt.Fprintf(&b, "writer %d line %d\n", w, i); err != nil {
					t.Error(err)
				}
				_ = b.String()
			}
		})
	}
	wg.Wait()
	got := b.String()
	if n := strings.Count(got, "\n"); n != writers*lines {
		t.Errorf("%d lines, want %d", n, writers*lines)
	}
	for w := range writers {
		if want := fmt.Sprintf("writer %d line %d\n", w, lines-1); !strings.Contains(got, want) {
			t.Errorf("no %q", want)
		}
	}
}

func TestNonLoopbackIPv4(t *testing.T) {
	s := NonLoopbackIPv4(t)
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		t.Errorf("NonLoopbackIPv4() = %q, want an IPv4 address neither loopback nor link-local", s)
	}
}
