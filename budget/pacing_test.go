package budget_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(at time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(at.UnixNano())
	return c
}
func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func quick(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(context.Background(), 200*time.Millisecond)
}

// TestPacedGrants: with pacing, an idle budget grants its burst at once, then one
// send every window/limit; State's next free slot says when.
func TestPacedGrants(t *testing.T) {
	kv := budgetBucket(t, budgetServer(t, t.TempDir(), "").ClientURL())
	clock := newFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	// 100 an hour: one every 36 s, 5 at once after idleness.
	b := newBudget(t, kv, 100, time.Hour, budget.WithPacing(5), budget.WithClock(clock.now), budget.WithPoll(time.Millisecond))
	g, err := b.AcquireGrant(context.Background(), 10)
	if err != nil || g.N != 5 {
		t.Fatalf("idle budget: granted %d (%v), want the burst of 5", g.N, err)
	}
	ctx, cancel := quick(t)
	defer cancel()
	if g, err := b.AcquireGrant(ctx, 1); err == nil {
		t.Fatalf("right after the burst: granted %d, want a wait", g.N)
	}
	st, err := b.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 36 s, less up to a slice (2,048 ms here: grants are counted per slice).
	if wait := st.NextFreeAt.Sub(clock.now()); wait < 33*time.Second || wait > 36*time.Second {
		t.Errorf("next free slot in %s, want 36s less at most a slice", wait)
	}
	clock.set(st.NextFreeAt)
	if g, err := b.AcquireGrant(context.Background(), 10); err != nil || g.N != 1 {
		t.Errorf("one interval later: granted %d (%v), want 1", g.N, err)
	}
	clock.add(10 * time.Minute) // idle: the burst is back
	if g, err := b.AcquireGrant(context.Background(), 10); err != nil || g.N != 5 {
		t.Errorf("after idleness: granted %d (%v), want 5", g.N, err)
	}
}

// TestUrgentGrantsTakeTheReserveAndAreNotPaced: ordinary grants stop at limit − the
// reserve; urgent ones take the reserve, without pacing, and never pass the limit.
func TestUrgentGrantsTakeTheReserveAndAreNotPaced(t *testing.T) {
	kv := budgetBucket(t, budgetServer(t, t.TempDir(), "").ClientURL())
	clock := newFakeClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	b := newBudget(t, kv, 10, time.Minute, budget.WithReserve(2), budget.WithPacing(10), budget.WithClock(clock.now), budget.WithPoll(time.Millisecond))
	g, err := b.AcquireGrant(context.Background(), 20)
	if err != nil || g.N != 8 {
		t.Fatalf("ordinary grants: %d (%v), want 8 (10 less the reserve of 2)", g.N, err)
	}
	ctx, cancel := quick(t)
	defer cancel()
	if g, err := b.AcquireGrant(ctx, 1); err == nil {
		t.Fatalf("an ordinary grant took the reserve (%d)", g.N)
	}
	if g, err := b.AcquireUrgentGrant(context.Background(), 5); err != nil || g.N != 2 {
		t.Fatalf("urgent grant: %d (%v), want the reserve of 2", g.N, err)
	}
	ctx2, cancel2 := quick(t)
	defer cancel2()
	if g, err := b.AcquireUrgentGrant(ctx2, 1); err == nil {
		t.Fatalf("an urgent grant passed the limit (%d)", g.N)
	}
	// Urgent grants are not paced: with a paced budget spent, one still goes.
	clock.add(2 * time.Minute) // the window is empty again
	p := newBudget(t, kv, 10, time.Minute, budget.WithKey("paced"), budget.WithReserve(1), budget.WithPacing(1), budget.WithClock(clock.now), budget.WithPoll(time.Millisecond))
	if g, err := p.AcquireGrant(context.Background(), 1); err != nil || g.N != 1 {
		t.Fatalf("first paced grant: %d (%v)", g.N, err)
	}
	if g, err := p.AcquireUrgentGrant(context.Background(), 1); err != nil || g.N != 1 {
		t.Errorf("urgent grant right after a paced one: %d (%v), want 1 at once", g.N, err)
	}
}
