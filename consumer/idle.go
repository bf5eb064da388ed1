package consumer

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// The idle wait of a consumer with a doorbell (Options.Doorbell). After a pull that
// brought nothing the loop waits for whichever comes first:
//
//   - a ring: a message was published on the consumer's subjects;
//   - the return of a message a worker gave back with a delay (a failed post, an item
//     returned unsent while paused, a nak at shutdown): Returns keeps every such time,
//     and a new one wakes the wait so that it is counted;
//   - IdleRecheck, spread by up to a quarter so that consumers started together do
//     not recheck together: what comes back without a publish or a nak of ours
//     (another replica's messages at its AckWait or its shutdown) is pulled then.

// Returns is when the messages a consumer gave back with a delay come back. One Returns
// may outlive its consumer (Options.Returns): a pipeline started again for the same
// tenant knows what its predecessor is waiting for. Safe for concurrent use.
type Returns struct {
	mu   sync.Mutex
	due  []time.Time // sorted
	wake chan struct{}
}

// NewReturns returns an empty schedule.
func NewReturns() *Returns { return &Returns{wake: make(chan struct{}, 1)} }

// add notes a message back at at and wakes a wait in progress.
func (r *Returns) add(at time.Time) {
	r.mu.Lock()
	i, _ := slices.BinarySearchFunc(r.due, at, func(a, b time.Time) int { return a.Compare(b) })
	r.due = slices.Insert(r.due, i, at)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// next drops the times up to now and reports whether one was among them (due: pull
// now), else the earliest time still ahead (ok false: none).
func (r *Returns) next(now time.Time) (at time.Time, due, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(r.due) && !r.due[n].After(now) {
		n++
	}
	r.due = r.due[n:]
	if n > 0 {
		return now, true, true
	}
	if len(r.due) == 0 {
		return time.Time{}, false, false
	}
	return r.due[0], false, true
}

// expectRedelivery notes that a message returned now comes back after delay.
// Without a doorbell nothing waits for it, and nothing is kept.
func (c *Consumer) expectRedelivery(delay time.Duration) {
	if c.o.Doorbell != nil && c.returns != nil { // returns is nil only in a Consumer not made by New
		c.returns.add(c.now().Add(delay))
	}
}

// waitIdle is the idle wait (see above). It waits only after a pull that brought
// nothing, and not while sending is paused (the probe keeps its own schedule).
func (c *Consumer) waitIdle(ctx context.Context) {
	if c.o.Doorbell == nil || c.returns == nil || !c.lastPullEmpty || c.brk.isOpen() {
		return
	}
	recheck := c.o.IdleRecheck + rand.N(c.o.IdleRecheck/4+1)
	deadline := c.now().Add(recheck)
	for {
		now := c.now()
		wait := deadline.Sub(now)
		if at, due, ok := c.returns.next(now); due {
			return
		} else if ok {
			wait = min(wait, at.Sub(now))
		}
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.o.Doorbell:
			t.Stop()
			return
		case <-c.returns.wake:
			t.Stop() // a new return: count it
		case <-t.C:
			if !c.now().Before(deadline) {
				return
			}
		}
	}
}
