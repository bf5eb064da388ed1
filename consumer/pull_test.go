package consumer_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// TestMessagePulledAheadIsKeptAlive: a message waiting in the reserve behind a post
// that outlasts AckWait stays with its replica (marked in progress), so another
// replica does not post it too.
func TestMessagePulledAheadIsKeptAlive(t *testing.T) {
	t.Parallel()
	const ackWait = time.Second
	js := natstest.Connect(t, natstest.Start(t).URL())
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.Options{AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	sim := emulator.New(emulator.Options{})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	snow, err := servicenow.New(servicenow.Config{InstanceURL: ts.URL, ClientID: "ionix", ClientSecret: "ionix", Username: "ionix", Password: "ionix"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{js: js, topo: topo, sim: sim, snow: snow, pub: publisher.New(js, "")}
	slow := item("ahead-slow", "slow post", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	queued := item("ahead-queued", "queued", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	release := newSignal()
	t.Cleanup(release.fire)
	var heldAt time.Time
	held := newSignal()
	a := r.deps(topo.Consumer)
	a.Importer = hookImporter{inner: snow, hook: func(ctx context.Context, title string) error {
		if title == slow.Title {
			heldAt = time.Now()
			held.fire()
			return release.wait(ctx)
		}
		return nil
	}}
	o := consumer.Options{Concurrency: 1, PullAhead: 1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond, AckWait: ackWait}
	r.publish(t, slow, queued)
	r.run(t, a, o)
	testkit.WaitFor(t, 10*time.Second, "replica A to hold both messages", func() bool {
		info, err := topo.Consumer.Info(ctx)
		return err == nil && info.NumAckPending == 2 && info.NumPending == 0
	})
	b := r.run(t, r.deps(topo.Consumer), o)
	if err := held.wait(ctx); err != nil {
		t.Fatal(err)
	}
	// What is checked is an absence: nothing may reach replica B while A's post
	// outlasts AckWait three times over.
	testkit.WaitFor(t, 10*time.Second, "the slow post to outlast AckWait three times", func() bool { return time.Since(heldAt) > 3*ackWait })
	if got := b.Stats().Received; got != 0 {
		t.Errorf("replica B received %d messages while A held them", got)
	}
	release.fire()
	r.waitDrained(t)
	if n := importsOf(sim, "ionix:"+queued.ID); n != 1 {
		t.Errorf("the message pulled ahead was posted %d times, want 1", n)
	}
}

// TestMessagesPulledAheadAreReturnedAtOnceAtShutdown: at shutdown a message waiting
// in the reserve goes back to the stream at once, not when a worker is free (behind
// a long post that takes the whole drain timeout), so another replica takes it.
func TestMessagesPulledAheadAreReturnedAtOnceAtShutdown(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	slow := item("ahead-slow2", "slow post", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	queued := item("ahead-queued2", "queued", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	release := newSignal()
	t.Cleanup(release.fire)
	a := r.deps(r.topo.Consumer)
	a.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		if title == slow.Title {
			return release.wait(ctx)
		}
		return nil
	}}
	o := consumer.Options{Concurrency: 1, PullAhead: 1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond, DrainTimeout: 15 * time.Second}
	r.publish(t, slow, queued)
	_, stop := r.launch(t, a, o)
	testkit.WaitFor(t, 10*time.Second, "replica A to hold both messages", func() bool {
		info, err := r.topo.Consumer.Info(ctx)
		return err == nil && info.NumAckPending == 2 && info.NumPending == 0
	})
	go func() { _ = stop() }()
	r.run(t, r.deps(r.topo.Consumer), o) // replica B
	testkit.WaitFor(t, 5*time.Second, "replica B to post the message A had pulled ahead", func() bool { return importsOf(r.sim, "ionix:"+queued.ID) >= 1 })
}

// staleBudget grants everything; once aged, every grant made before is no longer
// fresh. It counts the sends of stale grants given back.
type staleBudget struct {
	budget.Unlimited
	aged         atomic.Bool
	agedAt       atomic.Int64
	staleReturns atomic.Int64
}

func (s *staleBudget) age() { s.agedAt.Store(time.Now().UnixNano()); s.aged.Store(true) }

func (s *staleBudget) ReleaseGrant(_ context.Context, g budget.Grant, n int) error {
	if !s.Fresh(g) {
		s.staleReturns.Add(int64(n))
	}
	return nil
}

func (s *staleBudget) Fresh(g budget.Grant) bool {
	return !s.aged.Load() || g.At.UnixNano() > s.agedAt.Load()
}

// TestStaleGrantIsRenewedBeforeTheSend: a message that waited in the reserve longer
// than the budget allows between a grant and its send gives its grant back and takes
// a fresh one before it is posted (else a window could hold more than the cap).
func TestStaleGrantIsRenewedBeforeTheSend(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	slow := item("stale-slow", "slow post", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	queued := item("stale-queued", "queued", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	release := newSignal()
	t.Cleanup(release.fire)
	grants := &staleBudget{}
	d := r.deps(r.topo.Consumer)
	d.Budget = grants
	d.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		if title == slow.Title {
			return release.wait(ctx)
		}
		return nil
	}}
	r.publish(t, slow, queued)
	c := r.run(t, d, consumer.Options{Concurrency: 1, PullAhead: 1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "both messages in hand", func() bool {
		info, err := r.topo.Consumer.Info(ctx)
		return err == nil && info.NumAckPending == 2 && info.NumPending == 0
	})
	grants.age()
	release.fire()
	testkit.WaitFor(t, 10*time.Second, "both posted", func() bool { return c.Stats().Created == 2 })
	// Only the message waiting in the reserve held a grant from before: the slow
	// post's was spent before the grants aged, and later pulls take fresh ones.
	if n := grants.staleReturns.Load(); n != 1 {
		t.Errorf("%d stale sends given back, want 1 (the message pulled ahead renews its grant)", n)
	}
}
