package consumer_test

// The doorbell (Options.Doorbell, idle.go): after an empty pull a consumer waits, and
// no message may wait longer than it must because of it.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

const reviewRecheck = 30 * time.Second

const topologyPrefix = "ionix.action_items"

// countingPulls counts pulls that ended; failFetch, when armed, fails the next Fetch.
type countingPulls struct {
	jetstream.Consumer
	ended     atomic.Int64
	failFetch atomic.Bool
}

func (c *countingPulls) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	if c.failFetch.CompareAndSwap(true, false) {
		return nil, errors.New("nats: timeout (injected)")
	}
	b, err := c.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	out := make(chan jetstream.Msg)
	go func() {
		defer close(out)
		for m := range b.Messages() {
			out <- m
		}
		c.ended.Add(1)
	}()
	return &batch{msgs: out, inner: b}, nil
}

// failingBudget fails the next AcquireGrant when armed.
type failingBudget struct {
	budget.Unlimited
	fail atomic.Bool
}

func (f *failingBudget) AcquireGrant(ctx context.Context, want int) (budget.Grant, error) {
	if f.fail.CompareAndSwap(true, false) {
		return budget.Grant{}, errors.New("budget KV unavailable (injected)")
	}
	return f.Unlimited.AcquireGrant(ctx, want)
}

func doorbell(bell chan struct{}) <-chan struct{} {
	if bell == nil {
		return nil
	}
	return bell
}

func ring(bell chan struct{}) {
	select {
	case bell <- struct{}{}:
	default:
	}
}

func bellOptions(bell chan struct{}) consumer.Options {
	if os.Getenv("DOORBELL_OFF") != "" {
		bell = nil
	}
	return consumer.Options{Concurrency: 1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond,
		AckWait: reviewRecheck, IdleRecheck: reviewRecheck, MaxBackoff: 10 * time.Second, Doorbell: doorbell(bell)}
}

// A message a worker gives back with a delay while the loop already waits idle is
// pulled when it is due, not at IdleRecheck.
func TestDoorbellAMessageReturnedDuringTheIdleWaitIsPulledWhenDue(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	x := item("rv-nak-idle", "fails once after a long post", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	held, release := newSignal(), newSignal()
	t.Cleanup(release.fire)
	var calls atomic.Int64
	d := r.deps(r.topo.Consumer)
	pulls := &countingPulls{Consumer: r.topo.Consumer}
	d.Consumer = pulls
	d.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		if calls.Add(1) == 1 {
			held.fire()
			if err := release.wait(ctx); err != nil {
				return err
			}
			return errUnavailable // transient: retried after 1 s
		}
		return nil
	}}
	bell := make(chan struct{}, 1)
	r.run(t, d, bellOptions(bell))
	r.publish(t, x)
	ring(bell)
	if err := held.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The pull after x's brought nothing: the loop waits idle.
	testkit.WaitFor(t, 10*time.Second, "an empty pull after x's", func() bool { return pulls.ended.Load() >= 2 })
	release.fire()
	start := time.Now()
	testkit.WaitForDiag(t, 8*time.Second, "x retried (due 1 s after its failure)", func() bool { return calls.Load() >= 2 },
		func() string { return "still waiting after " + time.Since(start).String() })
}

// Every message given back with a delay is pulled when due, not only the earliest.
func TestDoorbellEveryReturnIsPulledWhenDue(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	soon := item("rv-soon", "retry in 1 s", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	later := item("rv-later", "retry in 3 s", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	var soonCalls, laterCalls atomic.Int64
	var laterFailedAt atomic.Int64
	d := r.deps(r.topo.Consumer)
	d.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		switch title {
		case soon.Title:
			if soonCalls.Add(1) == 1 {
				return errUnavailable
			}
		case later.Title:
			if laterCalls.Add(1) == 1 {
				laterFailedAt.Store(time.Now().UnixNano())
				return &servicenow.Error{Class: servicenow.ClassTransient, StatusCode: 503, Message: "busy", RetryAfter: 3 * time.Second}
			}
		}
		return nil
	}}
	bell := make(chan struct{}, 1)
	r.run(t, d, bellOptions(bell))
	r.publish(t, soon, later)
	ring(bell)
	testkit.WaitFor(t, 10*time.Second, "soon retried", func() bool { return soonCalls.Load() >= 2 })
	testkit.WaitForDiag(t, 10*time.Second, "later retried (due 3 s after its failure)", func() bool { return laterCalls.Load() >= 2 },
		func() string {
			return "failed " + time.Since(time.Unix(0, laterFailedAt.Load())).Round(time.Millisecond).String() + " ago"
		})
}

// A pull that fails after a ring is made again (after the backoff), not waited on.
func TestDoorbellAFailedPullAfterARingIsRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"budget", "fetch"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			x := item("rv-failed-pull-"+tc, "after a failed pull", "Vulnerability", 8, "2026-10-01T08:00:00Z")
			d := r.deps(r.topo.Consumer)
			pulls := &countingPulls{Consumer: r.topo.Consumer}
			grants := &failingBudget{}
			d.Consumer, d.Budget = pulls, grants
			bell := make(chan struct{}, 1)
			c := r.run(t, d, bellOptions(bell))
			testkit.WaitFor(t, 10*time.Second, "the first (empty) pull", func() bool { return pulls.ended.Load() >= 1 })
			if tc == "budget" {
				grants.fail.Store(true)
			} else {
				pulls.failFetch.Store(true)
			}
			r.publish(t, x)
			ring(bell)
			testkit.WaitFor(t, 8*time.Second, "x posted after one failed pull", func() bool { return c.Stats().Created >= 1 })
		})
	}
}

// Messages another replica gives back at shutdown are taken as soon as it rings (the
// tenant fleet rings the other replicas when it stops a pipeline).
func TestDoorbellMessagesAnotherReplicaReturnedAreTakenWhenItRings(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	slow := item("rv-ahead-slow", "slow post", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	queued := item("rv-ahead-queued", "queued", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	release := newSignal()
	t.Cleanup(release.fire)
	a := r.deps(r.topo.Consumer)
	a.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		if title == slow.Title {
			return release.wait(ctx)
		}
		return nil
	}}
	bellA, bellB := make(chan struct{}, 1), make(chan struct{}, 1)
	oa := bellOptions(bellA)
	oa.PullAhead, oa.DrainTimeout = 1, 15*time.Second
	// What the tenant fleet does: ring the other replicas once the reserve is back.
	oa.GaveBack = func() { bellB <- struct{}{} }
	r.publish(t, slow, queued)
	_, stop := r.launch(t, a, oa)
	testkit.WaitFor(t, 10*time.Second, "replica A to hold both messages", func() bool {
		info, err := r.topo.Consumer.Info(ctx)
		return err == nil && info.NumAckPending == 2 && info.NumPending == 0
	})
	bd := r.deps(r.topo.Consumer)
	pulls := &countingPulls{Consumer: r.topo.Consumer}
	bd.Consumer = pulls
	r.run(t, bd, bellOptions(bellB)) // replica B
	testkit.WaitFor(t, 10*time.Second, "B's first (empty) pull", func() bool { return pulls.ended.Load() >= 1 })
	go func() { _ = stop() }()
	testkit.WaitFor(t, 8*time.Second, "replica B to post the message A returned at shutdown", func() bool { return importsOf(r.sim, "ionix:"+queued.ID) >= 1 })
}

// A tenant's next pipeline (settings changed, a new connection) shares its
// predecessor's schedule of returns and pulls the message it gave back when due.
func TestDoorbellANewPipelineKeepsItsPredecessorsReturns(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	x := item("rv-restart", "fails once", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	var calls atomic.Int64
	d := r.deps(r.topo.Consumer)
	d.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		if calls.Add(1) == 1 {
			return &servicenow.Error{Class: servicenow.ClassTransient, StatusCode: 503, Message: "busy", RetryAfter: 2 * time.Second}
		}
		return nil
	}}
	bell := make(chan struct{}, 1)
	o := bellOptions(bell)
	o.Returns = consumer.NewReturns() // the tenant's, carried from one pipeline to the next
	r.publish(t, x)
	_, stop := r.launch(t, d, o)
	testkit.WaitFor(t, 10*time.Second, "x failed once", func() bool { return calls.Load() >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r.run(t, d, o) // the tenant's next pipeline, same bell and schedule
	testkit.WaitFor(t, 8*time.Second, "x retried (due 2 s after its failure)", func() bool { return calls.Load() >= 2 })
}

// Rings racing pulls (a real core subscription: a ring may come before the message is
// stored), items published at irregular moments: none waits for IdleRecheck.
func TestDoorbellRingsRacingPullsLeaveNoMessageWaiting(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	bell := make(chan struct{}, 1)
	sub, err := r.js.Conn().Subscribe(topologyPrefix+".>", func(*nats.Msg) { ring(bell) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	var mu sync.Mutex
	posted := map[string]time.Time{}
	d := r.deps(r.topo.Consumer)
	d.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		mu.Lock()
		posted[title] = time.Now()
		mu.Unlock()
		return nil
	}}
	o := bellOptions(bell)
	o.FetchWait = 50 * time.Millisecond
	r.run(t, d, o)
	published := map[string]time.Time{}
	const n = 60
	for i := range n {
		x := item(fmt.Sprintf("rv-stress-%d", i), fmt.Sprintf("stress %d", i), "Vulnerability", 8, "2026-10-01T08:00:00Z")
		published[x.Title] = time.Now()
		r.publish(t, x)
		// Irregular gaps: some within a pull, some right after it ends, some idle.
		gap := time.Duration(i*37%90) * time.Millisecond
		deadline := time.Now().Add(gap)
		testkit.WaitFor(t, time.Second, "gap", func() bool { return time.Now().After(deadline) })
	}
	testkit.WaitForDiag(t, 10*time.Second, "all posted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(posted) == n
	}, func() string { mu.Lock(); defer mu.Unlock(); return fmt.Sprintf("%d of %d posted", len(posted), n) })
	var worst time.Duration
	for title, at := range published {
		worst = max(worst, posted[title].Sub(at))
	}
	t.Logf("worst publish→post %v", worst)
	if worst > 2*time.Second {
		t.Errorf("an item waited %v", worst)
	}
}
