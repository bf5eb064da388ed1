package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// failOnce fails the first post whose record sets the incident state state ("" for
// a plain post) with a transient error; with commit, ServiceNow takes the post first
// and only its answer is lost.
type failOnce struct {
	inner  consumer.Importer
	state  string
	commit bool
	done   *atomic.Bool
}

func (f failOnce) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	if rec["u_"+mapping.FieldState] == f.state && f.done.CompareAndSwap(false, true) {
		if f.commit {
			_, _ = f.inner.Import(ctx, rec)
		}
		return servicenow.Result{}, errUnavailable
	}
	return f.inner.Import(ctx, rec)
}

// quickRetry caps the redelivery delay after a failed post (MaxBackoff; 1 s by
// default at the first failure): these tests wait for a retry, not for its delay.
const quickRetry = 100 * time.Millisecond

// closingRig runs one consumer with resolve_on_close whose first post setting state
// fails (see failOnce).
func closingRig(t *testing.T, fail failOnce) (*rig, *consumer.Consumer) {
	t.Helper()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	d := r.deps(r.topo.Consumer)
	fail.inner = r.snow
	d.Importer = fail
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond, MaxBackoff: quickRetry})
	return r, c
}

// TestClosingAfterAnOpenedPostWhoseAnswerWasLost: ServiceNow creates the incident
// but its answer is lost; the closing behind it finds no ledger entry and is
// recorded without a post. The retried opened event, superseded by it, requeues the
// closing, which resolves the incident ServiceNow did create. (Each decision on the
// way is a row of TestDecisionCases; this runs them end to end.)
func TestClosingAfterAnOpenedPostWhoseAnswerWasLost(t *testing.T) {
	t.Parallel()
	r, c := closingRig(t, failOnce{state: "", commit: true, done: new(atomic.Bool)})
	it := item("race-e", "Open RDP on gw2.example.com", "Vulnerability", 8, "2026-09-01T10:00:00Z")
	r.publishNth(t, it, ionix.EventOpened, 0)
	closed := it
	closed.LastClosedAt = "2026-11-20T09:30:00Z"
	r.publishNth(t, closed, ionix.EventClosed, 1)
	testkit.WaitFor(t, 15*time.Second, "the closing's copy", func() bool { return c.Stats().Requeued == 1 && c.Stats().Received == 4 })
	r.waitDrained(t)
	if in := incidentOf(t, r.sim, it.ID); in.State != mapping.StateResolved || in.Inserts != 1 {
		t.Errorf("incident %+v: want the one ServiceNow created, resolved", in)
	}
	if s := c.Stats(); s.Superseded != 1 || s.FilteredClosed != 1 || s.Resolved != 1 {
		t.Errorf("stats %+v: want the closing recorded without a post, the retried opened event superseded, the closing's copy posted", s)
	}
}

// missOnceKV answers the next Get of the ledger "not found" once armed: a read taken
// just before another replica recorded its post.
type missOnceKV struct {
	jetstream.KeyValue
	armed *atomic.Bool
}

func (h missOnceKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if h.armed.CompareAndSwap(true, false) {
		return nil, jetstream.ErrKeyNotFound
	}
	return h.KeyValue.Get(ctx, key)
}

// TestClosingThatMissedTheIncidentKeepsItsTicket: the closing reads the ledger just
// before the incident's entry appears, and its post then fails once. The entry must
// survive (not be replaced by "closed without an incident"), so the retried closing
// resolves the incident.
func TestClosingThatMissedTheIncidentKeepsItsTicket(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	armed := new(atomic.Bool)
	d := r.deps(r.topo.Consumer)
	d.Ledger = ledger.New(missOnceKV{KeyValue: r.topo.Tickets, armed: armed})
	d.Importer = failOnce{inner: r.snow, state: mapping.StateResolved, done: new(atomic.Bool)}
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond, MaxBackoff: quickRetry})
	it := item("race-f", "Open VNC on desk2.example.com", "Vulnerability", 8, "2026-09-01T10:00:00Z")
	r.publishNth(t, it, ionix.EventOpened, 0)
	testkit.WaitFor(t, 10*time.Second, "the incident", func() bool { return c.Stats().Created == 1 })
	armed.Store(true)
	r.publishNth(t, it, ionix.EventClosed, 1)
	testkit.WaitFor(t, 15*time.Second, "the retried closing", func() bool { return c.Stats().Resolved == 1 })
	r.waitDrained(t)
	if in := incidentOf(t, r.sim, it.ID); in.State != mapping.StateResolved {
		t.Errorf("incident state %q, want resolved", in.State)
	}
	if tk, _, _ := ledger.New(r.topo.Tickets).Get(context.Background(), it.ID); tk.Number == "" {
		t.Errorf("ledger %+v lost the incident", tk)
	}
}

// TestReopeningBelowTheThresholdInOneBatch: opened (above the threshold), closed and
// reopened (below it) fetched together, as after an outage: the reopening waits for
// its turn before the filter asks the ledger whether the item has an incident, and
// reopens it.
func TestReopeningBelowTheThresholdInOneBatch(t *testing.T) {
	t.Parallel()
	f := mapping.Filter{UrgencyThreshold: 7}
	r := newRig(t, f, emulator.Options{})
	it := item("race-i", "Weak TLS on mail3.example.com", "PKI", 8, "2026-09-01T10:00:00Z")
	low := it
	low.Urgency = 6
	r.publishNth(t, it, ionix.EventOpened, 0)
	r.publishNth(t, low, ionix.EventClosed, 1)
	r.publishReopening(t, low, 2)
	c := r.startWith(t, r.topo.Consumer, consumer.Options{Filter: f, Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "the three events", func() bool { return c.Stats().Received == 3 })
	r.waitDrained(t)
	if in := incidentOf(t, r.sim, it.ID); in.State != mapping.StateInProgress {
		t.Errorf("incident state %q, want In Progress; stats %+v", in.State, c.Stats())
	}
}
