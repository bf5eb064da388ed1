package consumer_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// holdByItem holds the n-th import of the records whose correlation id is in hold,
// until release is closed.
type holdByItem struct {
	consumer.Importer
	mu      sync.Mutex
	n       map[string]int
	holdNth int
	hold    map[string]bool
	release chan struct{}
	held    int
	started int
	// after, per correlation id, holds that item's holdNth import until so many
	// others are held.
	after map[string]int
}

func (h *holdByItem) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	cid := ""
	for k, v := range rec {
		if strings.HasSuffix(k, "correlation_id") {
			cid = v
		}
	}
	h.mu.Lock()
	h.started++
	h.n[cid]++
	wait := h.hold[cid] && h.n[cid] == h.holdNth
	if wait {
		h.held++
	}
	need := 0
	if h.n[cid] == h.holdNth {
		need = h.after[cid]
	}
	h.mu.Unlock()
	for need > 0 {
		if _, held := h.count(); held >= need {
			break
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return servicenow.Result{}, ctx.Err()
		}
	}
	if wait {
		select {
		case <-h.release:
		case <-ctx.Done():
			return servicenow.Result{}, ctx.Err()
		}
	}
	return h.Importer.Import(ctx, rec)
}

func (h *holdByItem) count() (started, held int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started, h.held
}

// TestNoVerificationPostAfterHalt: README: after a halt "no further post (at
// most the ones already in flight)". Four updates are in flight when the first
// verification halts sending; the other three, once answered, must not start a
// verification post of their own after the halt (on this instance each would be
// another duplicate incident).
func TestNoVerificationPostAfterHalt(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{NoCoalesce: true, MissingACLs: []string{emulator.ACLIncidentRead}})
	batch := items("rv2", 4)
	hold := map[string]bool{}
	for _, it := range batch[1:] {
		hold["ionix:"+it.ID] = true
	}
	// The first item's update (the one that halts) waits until the other three are
	// in flight.
	imp := &holdByItem{Importer: r.snow, n: map[string]int{}, holdNth: 2, hold: hold, release: make(chan struct{}),
		after: map[string]int{"ionix:" + batch[0].ID: 3}}
	d := r.deps(r.topo.Consumer)
	d.Importer, d.Incidents = imp, r.snow
	c := r.run(t, d, consumer.Options{Concurrency: 4, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, batch...)
	testkit.WaitFor(t, 10*time.Second, "created", func() bool { return c.Stats().Created == 4 })
	for i := range batch {
		batch[i].Urgency = 9.8
	}
	r.publish(t, batch...)
	testkit.WaitFor(t, 10*time.Second, "halted", func() bool { return c.Paused().Halted })
	testkit.WaitFor(t, 10*time.Second, "3 updates in flight", func() bool { _, h := imp.count(); return h == 3 })
	atHalt, _ := imp.count() // includes the 3 held updates (in flight)
	close(imp.release)
	r.waitDrained(t) // the three settled
	after, _ := imp.count()
	if after != atHalt {
		t.Errorf("%d imports started after the halt (beyond the %d in flight); %d incidents", after-atHalt, 3, len(r.sim.Incidents()))
	}
}

// TestVerificationPostOverwritesNewerVersion: two replicas. An admin deleted
// the item's incident; replica A posts v2 (a new incident), records it, and posts v2
// once more to verify coalesce. Before that verification post goes out (a slow
// grant at the cap, a slow instance), replica B posts v3. A's verification post puts
// v2 back over v3, so A requeues v3, which ends on the incident.
func TestVerificationPostOverwritesNewerVersion(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{MissingACLs: []string{emulator.ACLIncidentRead}})
	it := item("rv2-order", "v1 title", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	imp := &holdByItem{Importer: r.snow, n: map[string]int{}, holdNth: 3, hold: map[string]bool{"ionix:" + it.ID: true}, release: make(chan struct{})}
	// One worker, held by a hook, and nothing pulled ahead: the next version goes to the other replica.
	o := consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond}
	dA := r.deps(r.topo.Consumer)
	dA.Importer, dA.Incidents = imp, r.snow
	a := r.run(t, dA, o)
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "created", func() bool { return a.Stats().Created == 1 })
	if !r.sim.DeleteIncident(incidentOf(t, r.sim, it.ID).Number) {
		t.Fatal("delete")
	}
	it.Title = "v2 title"
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "A's verification post held", func() bool { _, h := imp.count(); return h == 1 })
	dB := r.deps(r.topo.Consumer)
	dB.Incidents = r.snow
	b := r.run(t, dB, o)
	it.Title = "v3 title"
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "B posted v3", func() bool { return b.Stats().Updated >= 1 })
	r.waitOnlyHeld(t) // B's own requeued copy (if any) posted too
	close(imp.release)
	r.waitDrained(t)
	got := incidentOf(t, r.sim, it.ID)
	if !strings.Contains(got.ShortDescription, "v3") {
		t.Errorf("incident %s shows %q after every version was acked; want v3 (the ledger's version)", got.Number, got.ShortDescription)
	}
	if p := a.Paused(); p.Paused {
		t.Errorf("A paused: %v", p.Cause)
	}
}

// blindFinder reads like ServiceNow when the user may read incident rows but not
// their correlation_id field: the query condition is dropped, every row comes back
// without the field, and FindIncidents (which keeps exact matches only) answers
// none, without an error.
type blindFinder struct{}

func (blindFinder) FindIncidents(context.Context, string) ([]servicenow.Incident, error) {
	return nil, nil
}

// TestUnreadableCorrelationIDDoesNotHaltOnADeletedIncident: coalesce works, an
// admin deleted the item's incident; the read cannot see correlation_id and returns
// nothing. The new incident (sys_id in hand) is not among the rows, so the read
// proves nothing: the item is posted again, which updates, and sending goes on.
func TestUnreadableCorrelationIDDoesNotHaltOnADeletedIncident(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	it := item("rv2-blind", "Open Redis on cache.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	d := r.deps(r.topo.Consumer)
	d.Incidents = blindFinder{}
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "created", func() bool { return c.Stats().Created == 1 })
	if !r.sim.DeleteIncident(incidentOf(t, r.sim, it.ID).Number) {
		t.Fatal("delete")
	}
	it.Urgency = 9.5
	r.publish(t, it)
	r.waitDrained(t)
	if p := c.Paused(); p.Halted {
		t.Errorf("halted although coalesce works: %v", p.Cause)
	}
}

// TestVerificationPostReopensAClosedItem: resolve_on_close, two replicas.
// The item's incident was deleted; replica A posts the item's reopening (a new
// incident, In Progress) and holds its verification post; replica B posts the item's
// next closing (Resolved). A's verification re-post of the reopening record sets the
// incident back to In Progress, so A requeues the closing, which resolves it again.
func TestVerificationPostReopensAClosedItem(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{MissingACLs: []string{emulator.ACLIncidentRead}})
	it := item("rv2-reopen", "Open Redis on cache.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	imp := &holdByItem{Importer: r.snow, n: map[string]int{}, holdNth: 4, hold: map[string]bool{"ionix:" + it.ID: true}, release: make(chan struct{})}
	// One worker, held by a hook, and nothing pulled ahead: the next version goes to the other replica.
	o := consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond, ResolveOnClose: true}
	dA := r.deps(r.topo.Consumer)
	dA.Importer, dA.Incidents = imp, r.snow
	a := r.run(t, dA, o)
	r.publishNth(t, it, ionix.EventOpened, 1)
	closed := it
	closed.LastClosedAt = "2026-10-02T08:00:00Z"
	r.publishNth(t, closed, ionix.EventClosed, 1)
	testkit.WaitFor(t, 10*time.Second, "resolved", func() bool { return a.Stats().Resolved == 1 })
	if !r.sim.DeleteIncident(incidentOf(t, r.sim, it.ID).Number) {
		t.Fatal("delete")
	}
	r.publishReopening(t, it, 2)
	testkit.WaitFor(t, 10*time.Second, "A's verification post held", func() bool { _, h := imp.count(); return h == 1 })
	dB := r.deps(r.topo.Consumer)
	dB.Incidents = r.snow
	b := r.run(t, dB, o)
	closed.LastClosedAt = "2026-10-03T08:00:00Z"
	r.publishNth(t, closed, ionix.EventClosed, 2)
	testkit.WaitFor(t, 10*time.Second, "B resolved", func() bool { return b.Stats().Resolved >= 1 })
	r.waitOnlyHeld(t)
	close(imp.release)
	r.waitDrained(t)
	got := incidentOf(t, r.sim, it.ID)
	if got.State != "6" {
		t.Errorf("incident %s in state %s after the item's last event (a closing) was acked; want 6 (Resolved)", got.Number, got.State)
	}
}

// waitOnlyHeld waits until the durable consumer has nothing left to deliver and one
// message unacknowledged: the one whose post a test holds.
func (r *rig) waitOnlyHeld(t *testing.T) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, "every message but the held one settled", func() bool {
		info, err := r.topo.Consumer.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 1
	})
}
