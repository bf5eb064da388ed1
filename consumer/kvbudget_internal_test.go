package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
)

// TestKVBudgetForgetsExpiredGrants: under a backlog every grant is spent and none is
// released; the process's own record of its grants must still expire with the
// window, or it grows by one stamp per send for as long as the process runs.
func TestKVBudgetForgetsExpiredGrants(t *testing.T) {
	js := natstest.Connect(t, natstest.Start(t).URL())
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "budget"})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := NewKVBudget(kv, 10, time.Second, WithBudgetClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if _, err := b.AcquireGrant(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(200 * time.Millisecond)
	}
	b.mu.Lock()
	held := len(b.mine)
	b.mu.Unlock()
	if held > 10 {
		t.Errorf("the budget remembers %d of its grants after 200 sends at 5 per 1s window; want at most the 10 a window can hold", held)
	}
}
