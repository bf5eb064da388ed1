package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// TestRecreatedStreamIsNotOlderThanTheLedger: the stream is deleted and created again
// while the ticket ledger survives; the new stream counts from 1, and a changed item
// published on it is posted — not taken for older than the ledger's entry (written
// at a higher sequence of the stream before) and acknowledged unposted.
func TestRecreatedStreamIsNotOlderThanTheLedger(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	o := consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond}
	v1 := item("again-1", "Open Kibana on logs.example.com", "Cloud", 8, "2026-09-01T10:00:00Z")
	r.publishFifth(t, v1)
	r.deliverOnce(t, r.deps(r.topo.Consumer), o, func(s consumer.Snapshot) bool { return s.Created == 5 })
	r.recreateStream(t)
	v2 := v1
	v2.Title = "Open Kibana on logs.example.com (indices readable)"
	r.publish(t, v2) // sequence 1 of the new stream
	c := r.startWith(t, r.topo.Consumer, o)
	testkit.WaitFor(t, 10*time.Second, "the changed item", func() bool { return c.Stats().Received == 1 })
	r.waitDrained(t)
	r.wantTitle(t, v1.ID, v2.Title, c.Stats())
	if s := c.Stats(); s.Superseded != 0 || s.Updated != 1 {
		t.Errorf("stats %+v: want the changed item posted, nothing superseded", s)
	}
}

// publishFifth publishes four other items and then it: at sequence 5 of a fresh
// stream, above the sequences the item's later versions get on a recreated one.
func (r *rig) publishFifth(t *testing.T, it ionix.ActionItem) {
	t.Helper()
	r.publish(t, items("filler", 4)...)
	r.publish(t, it)
}

// wantTitle checks that the item's incident carries the title of the version that
// should have reached it last.
func (r *rig) wantTitle(t *testing.T, id, title string, stats consumer.Snapshot) {
	t.Helper()
	if in := incidentOf(t, r.sim, id); in.ShortDescription != title {
		t.Errorf("incident says %q, want the latest version %q; stats %+v", in.ShortDescription, title, stats)
	}
}

// recreateStream deletes the action-item stream and creates the topology again, as
// the next process to start does; the rig then uses the new stream and consumer.
func (r *rig) recreateStream(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := r.js.DeleteStream(ctx, r.topo.Names.Stream); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Ensure(ctx, r.js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.topo = topo
}

// TestReplicaRunningThroughAStreamRecreation: a consumer that keeps running while the
// stream is deleted and created again notices the new stream instance, and posts the
// new stream's events.
func TestReplicaRunningThroughAStreamRecreation(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	o := consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond, MaxBackoff: time.Second}
	v1 := item("again-2", "Open Grafana on dash.example.com", "Cloud", 8, "2026-09-01T10:00:00Z")
	r.publishFifth(t, v1)
	a := r.startWith(t, r.topo.Consumer, o)
	testkit.WaitFor(t, 10*time.Second, "the first stream delivered", func() bool { return a.Stats().Created == 5 })
	r.recreateStream(t)
	v2 := v1
	v2.Title = "Open Grafana on dash.example.com (admin/admin)"
	r.publish(t, v2) // sequence 1 of the new stream
	testkit.WaitFor(t, 20*time.Second, "the running consumer to take the changed item", func() bool { return a.Stats().Received == 6 })
	r.waitDrained(t)
	r.wantTitle(t, v1.ID, v2.Title, a.Stats())
}

// rejectOnce makes ServiceNow reject the first post of one correlation id.
type rejectOnce struct {
	inner consumer.Importer
	corr  string
	done  *atomic.Bool
}

func (r rejectOnce) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	if rec["u_correlation_id"] == r.corr && r.done.CompareAndSwap(false, true) {
		return servicenow.Result{}, fmt.Errorf("%w: 400 invalid row", servicenow.ErrRejected)
	}
	return r.inner.Import(ctx, rec)
}

// deliverOnce runs a consumer over the rig's current stream until done holds, then
// stops it.
func (r *rig) deliverOnce(t *testing.T, d consumer.Deps, o consumer.Options, done func(consumer.Snapshot) bool) consumer.Snapshot {
	t.Helper()
	c, stop := r.launch(t, d, o)
	testkit.WaitFor(t, 10*time.Second, "the stream delivered", func() bool { return done(c.Stats()) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return c.Stats()
}

// TestDeadLettersAcrossAStreamRecreation: a message dead-lettered on the new stream at
// a sequence the old stream's dead letter had is stored too (not dropped as a
// duplicate), and the old dead letter, re-driven into the new stream, is a new event
// there — it does not make later versions of its item look older.
func TestDeadLettersAcrossAStreamRecreation(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	o := consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 300 * time.Millisecond, MaxBackoff: time.Second}
	rejecting := func(id string) consumer.Deps {
		d := r.deps(r.topo.Consumer)
		d.Importer = rejectOnce{inner: r.snow, corr: "ionix:" + id, done: new(atomic.Bool)}
		return d
	}
	v1 := item("again-3", "Open Kibana v1", "Cloud", 8, "2026-09-01T10:00:00Z")
	r.publish(t, items("old", 4)...)
	r.publish(t, v1) // sequence 5, rejected
	r.deliverOnce(t, rejecting(v1.ID), o, func(s consumer.Snapshot) bool { return s.Received == 5 && s.DeadRejected == 1 })

	r.recreateStream(t)
	bad := item("again-4", "Rejected on the new stream", "Cloud", 8, "2026-09-01T10:00:00Z")
	r.publish(t, items("new", 4)...)
	r.publish(t, bad) // sequence 5 again, rejected
	r.deliverOnce(t, rejecting(bad.ID), o, func(s consumer.Snapshot) bool { return s.Received == 5 && s.DeadRejected == 1 })
	dl := dlq.New(r.js, r.topo.Names)
	if n, err := dl.Count(ctx); err != nil || n != 2 {
		t.Fatalf("%d dead letters (%v), want 2: the new stream's was dropped as a duplicate", n, err)
	}

	v2 := v1
	v2.Title = "Open Kibana v2"
	r.publish(t, v2) // sequence 6
	c := r.startWith(t, r.topo.Consumer, o)
	if _, err := dl.RedriveAll(ctx, nil); err != nil { // v1 (old sequence 5) and the other
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "v2 and the re-driven dead letters", func() bool { return c.Stats().Received == 3 })
	v3 := v1
	v3.Title = "Open Kibana v3"
	r.publish(t, v3)
	testkit.WaitFor(t, 10*time.Second, "v3", func() bool { return c.Stats().Received == 4 })
	r.waitDrained(t)
	r.wantTitle(t, v1.ID, v3.Title, c.Stats())
}

// gatedBudget grants everything, except while closed: then AcquireGrant waits until
// it is opened again.
type gatedBudget struct {
	budget.Unlimited
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	waiting atomic.Bool
}

func (g *gatedBudget) close() { g.mu.Lock(); g.gate = make(chan struct{}); g.mu.Unlock() }
func (g *gatedBudget) open()  { g.mu.Lock(); close(g.gate); g.gate = nil; g.mu.Unlock() }

func (g *gatedBudget) AcquireGrant(ctx context.Context, want int) (budget.Grant, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.waiting.Store(true)
		select {
		case <-gate:
		case <-ctx.Done():
			return budget.Grant{}, ctx.Err()
		}
	}
	return g.Unlimited.AcquireGrant(ctx, want)
}

// TestStreamRecreatedWhileWaitingForBudget: the fetch loop waits for budget (no pull
// outstanding, so none fails) while the stream is deleted and created again; the
// stream's new instance is read before the next pull, and the new stream's events are
// posted.
func TestStreamRecreatedWhileWaitingForBudget(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	o := consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond, MaxBackoff: time.Second}
	budget := &gatedBudget{}
	d := r.deps(r.topo.Consumer)
	d.Budget = budget
	v1 := item("again-5", "Open Grafana v1", "Cloud", 8, "2026-09-01T10:00:00Z")
	r.publishFifth(t, v1)
	c := r.run(t, d, o)
	testkit.WaitFor(t, 10*time.Second, "the first stream delivered", func() bool { return c.Stats().Created == 5 })
	budget.close()
	testkit.WaitFor(t, 5*time.Second, "the fetch loop to wait for budget", budget.waiting.Load)
	r.recreateStream(t)
	v2 := v1
	v2.Title = "Open Grafana v2"
	r.publish(t, v2) // sequence 1 of the new stream
	budget.open()
	testkit.WaitFor(t, 10*time.Second, "v2", func() bool { return c.Stats().Received == 6 })
	r.waitDrained(t)
	r.wantTitle(t, v1.ID, v2.Title, c.Stats())
}

// heldImporter holds the first post of one correlation id until release is closed.
type heldImporter struct {
	inner   consumer.Importer
	corr    string
	release chan struct{}
	started *atomic.Bool
}

func (h heldImporter) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	if rec["u_correlation_id"] == h.corr && h.started.CompareAndSwap(false, true) {
		select {
		case <-h.release:
		case <-ctx.Done():
			return servicenow.Result{}, ctx.Err()
		}
	}
	return h.inner.Import(ctx, rec)
}

// TestPostInFlightThroughAStreamRecreation: a post of the old stream's message is in
// flight while the stream is deleted and created again and the consumer moves to the
// new instance; the ledger records the post under the old instance, so the new
// stream's events of the item (at lower sequences) are not taken for older.
func TestPostInFlightThroughAStreamRecreation(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	o := consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond, MaxBackoff: time.Second}
	v1 := item("again-6", "Open Kibana v1", "Cloud", 8, "2026-09-01T10:00:00Z")
	release, started := make(chan struct{}), new(atomic.Bool)
	d := r.deps(r.topo.Consumer)
	d.Importer = heldImporter{inner: r.snow, corr: "ionix:" + v1.ID, release: release, started: started}
	r.publishFifth(t, v1)
	c := r.run(t, d, o)
	testkit.WaitFor(t, 10*time.Second, "v1 in flight", started.Load)
	r.recreateStream(t)
	testkit.WaitFor(t, 10*time.Second, "the consumer pulling from the new stream", func() bool {
		info, err := r.topo.Consumer.Info(ctx)
		return err == nil && info.NumWaiting > 0
	})
	close(release)
	testkit.WaitFor(t, 10*time.Second, "v1 recorded", func() bool { return c.Stats().Created == 5 })
	v2 := v1
	v2.Title = "Open Kibana v2"
	r.publish(t, v2) // sequence 1 of the new stream
	testkit.WaitFor(t, 10*time.Second, "v2", func() bool { return c.Stats().Received == 6 })
	r.waitDrained(t)
	r.wantTitle(t, v1.ID, v2.Title, c.Stats())
}
