package budget_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/internal/testkit"
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

// TestAnUrgentGrantWaitingComesBeforeOrdinaryOnesOfEveryReplica: two replicas drain
// a backlog with ordinary grants under a spent, paced window with nothing reserved;
// a third asks for an urgent grant: the ordinary acquires of every replica hold back
// while it waits, so it takes the next slot the window frees (SPEC §10: the order is
// global). Without the mark each slot went to whichever replica asked first.
func TestAnUrgentGrantWaitingComesBeforeOrdinaryOnesOfEveryReplica(t *testing.T) {
	kv := budgetBucket(t, budgetServer(t, t.TempDir(), "").ClientURL())
	// 10 per second, paced (one every 100 ms), nothing reserved for urgent grants.
	replica := func() *budget.KV { return newBudget(t, kv, 10, time.Second, budget.WithPacing(1)) }
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var ordinary []time.Time // when each ordinary grant came back
	var drains sync.WaitGroup
	for range 2 {
		b := replica()
		for range 2 {
			drains.Go(func() {
				for ctx.Err() == nil {
					if g, err := b.AcquireGrant(ctx, 1); err == nil && g.N > 0 {
						mu.Lock()
						ordinary = append(ordinary, time.Now())
						mu.Unlock()
					}
				}
			})
		}
	}
	defer func() { cancel(); drains.Wait() }()
	testkit.WaitFor(t, 5*time.Second, "the window spent", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ordinary) >= 15
	})
	urgent := replica()
	const rounds = 8
	overtaken := 0
	for range rounds {
		start := time.Now()
		g, err := urgent.AcquireUrgentGrant(ctx, 1)
		end := time.Now()
		if err != nil || g.N != 1 {
			t.Fatalf("urgent grant: %d (%v)", g.N, err)
		}
		if wait := end.Sub(start); wait > time.Second {
			t.Errorf("the urgent grant waited %s, more than the window", wait)
		}
		mu.Lock()
		for _, at := range ordinary {
			if at.After(start) && at.Before(end) {
				overtaken++
			}
		}
		mu.Unlock()
	}
	t.Logf("%d ordinary grants while urgent ones waited", overtaken)
	// An ordinary acquire may have read the budget just before a mark came.
	if overtaken > 1 {
		t.Errorf("%d ordinary grants came while %d urgent ones waited, want at most 1", overtaken, rounds)
	}
}

// TestALeftBehindUrgentMarkHoldsBackForAFewPollsOnly: a mark whose writer died (or
// whose clock runs ahead) holds ordinary grants back for three polls of the
// reader's clock at most, whatever it says.
func TestALeftBehindUrgentMarkHoldsBackForAFewPollsOnly(t *testing.T) {
	kv := budgetBucket(t, budgetServer(t, t.TempDir(), "").ClientURL())
	const poll = 50 * time.Millisecond
	b := newBudget(t, kv, 10, time.Minute, budget.WithPoll(poll))
	if g, err := b.AcquireGrant(context.Background(), 9); err != nil || g.N != 9 {
		t.Fatalf("the window nearly spent: %d (%v)", g.N, err)
	}
	ahead := time.Now().Add(time.Hour).UnixMilli() // a writer an hour ahead
	if _, err := kv.Put(context.Background(), "urgent.window", []byte(strconv.FormatInt(ahead, 10))); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if g, err := b.AcquireGrant(ctx, 1); err != nil || g.N != 1 {
		t.Fatalf("the last slot: %d (%v)", g.N, err)
	}
	if waited := time.Since(start); waited < poll || waited > 3*poll+time.Second {
		t.Errorf("held back %s by a mark nobody renews, want about three polls (%s)", waited, 3*poll)
	}
}
