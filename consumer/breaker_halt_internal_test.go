package consumer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/servicenow"
)

// TestNoProbeAfterHalt: sending is paused (an outage) and a probe is due;
// probeSlot waits for the post still in flight. That post finds a second incident
// and halts sending for good. probeSlot must not then let a probe through.
func TestNoProbeAfterHalt(t *testing.T) {
	t.Parallel()
	c := &Consumer{now: time.Now}
	c.brk = newBreaker(time.Millisecond, time.Millisecond, time.Now, zerolog.Nop())
	c.brk.mu.Lock()
	c.brk.open, c.brk.class, c.brk.since, c.brk.openUntil = true, servicenow.ClassTransient, time.Now(), time.Now().Add(-time.Second)
	c.brk.mu.Unlock()
	slots := make(chan struct{}, 2)
	slots <- struct{}{} // a post in flight
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int, 1)
	go func() {
		n, _ := c.probeSlot(ctx, slots)
		got <- n
	}()
	time.Sleep(100 * time.Millisecond)
	c.brk.halt(errors.New("second incident"))
	<-slots // the post in flight ends
	select {
	case n := <-got:
		if n > 0 {
			t.Errorf("probeSlot let %d probe through after the halt", n)
		}
	case <-time.After(500 * time.Millisecond):
	}
}
