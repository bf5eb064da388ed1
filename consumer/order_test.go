package consumer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// hookImporter runs hook before each post to ServiceNow; an error from it is the
// post's outcome (ServiceNow never sees the request).
type hookImporter struct {
	inner consumer.Importer
	hook  func(ctx context.Context, title string) error
	// after runs once ServiceNow answered.
	after func(title string)
}

func (h hookImporter) Import(ctx context.Context, record map[string]string) (servicenow.Result, error) {
	title := record["u_"+mapping.FieldName]
	if h.hook != nil {
		if err := h.hook(ctx, title); err != nil {
			return servicenow.Result{}, err
		}
	}
	res, err := h.inner.Import(ctx, record)
	if h.after != nil {
		h.after(title)
	}
	return res, err
}

var errUnavailable = &servicenow.Error{Class: servicenow.ClassTransient, StatusCode: 503, Message: "instance unavailable"}

// signal is a channel closed once.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }
func (s *signal) fire()  { s.once.Do(func() { close(s.ch) }) }
func (s *signal) wait(ctx context.Context) error {
	select {
	case <-s.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
		return errors.New("signal never fired")
	}
}

// TestOverlappingVersionsOnTwoReplicasEndWithTheNewest: two replicas post two
// versions of one item at the same moment and the older reaches ServiceNow last.
// The incident must end with the newer version, in both orders of the tickets writes.
func TestOverlappingVersionsOnTwoReplicasEndWithTheNewest(t *testing.T) {
	t.Parallel()
	v1 := item("ord-2", "Open port 3389 on rdp.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	v2 := v1
	v2.Title = "Open port 3389 on rdp.example.com (exploited)"
	v2.Urgency = 9.6

	for _, tt := range []struct {
		name string
		// recordV1First makes replica B, once its v2 reached ServiceNow, wait until
		// replica A (which posts v1 after that) has recorded v1 in the ledger.
		recordV1First bool
		// resolveOnClose makes every opened event look in the tickets first.
		resolveOnClose bool
	}{
		{"older post recorded last", false, false},
		{"older post recorded first", true, false},
		{"older post recorded last, resolve_on_close", false, true},
		{"older post recorded first, resolve_on_close", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			tickets := ledger.New(r.topo.Tickets)
			v2Landed := newSignal()
			// One worker, held by a hook, and nothing pulled ahead: the next version goes to the other replica.
			o := consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), ResolveOnClose: tt.resolveOnClose, FetchWait: 300 * time.Millisecond}
			// Replica A holds v1 until replica B's v2 reached ServiceNow.
			a := r.deps(r.topo.Consumer)
			a.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
				if title == v1.Title {
					return v2Landed.wait(ctx)
				}
				return nil
			}}
			r.publish(t, v1)
			ca := r.run(t, a, o)
			testkit.WaitFor(t, 10*time.Second, "replica A to hold v1", func() bool { return ca.Stats().Received == 1 })
			b := r.deps(r.topo.Consumer)
			b.Importer = hookImporter{inner: r.snow, after: func(title string) {
				if title != v2.Title {
					return
				}
				v2Landed.fire()
				if tt.recordV1First {
					testkit.WaitFor(t, 10*time.Second, "replica A to record v1", func() bool {
						tk, ok, _ := tickets.Get(context.Background(), "ord-2")
						return ok && tk.Fingerprint == v1.Fingerprint()
					})
				}
			}}
			cb := r.run(t, b, o)
			r.publish(t, v2)
			testkit.WaitFor(t, 20*time.Second, "the newest version on the incident", func() bool {
				ins := r.sim.Incidents()
				return ca.Stats().Requeued+cb.Stats().Requeued == 1 && len(ins) == 1 && ins[0].ShortDescription == v2.Title
			})
			r.waitDrained(t)
			if in := incidentOf(t, r.sim, "ord-2"); in.ShortDescription != v2.Title || in.Inserts != 1 {
				t.Errorf("incident %+v: want the newer title and one insert", in)
			}
			if tk, _, _ := tickets.Get(context.Background(), "ord-2"); tk.Fingerprint != v2.Fingerprint() {
				t.Errorf("ledger holds fingerprint %s, want the newer version's", tk.Fingerprint)
			}
		})
	}
}

// TestOneReplicaPostsVersionsOfAnItemInOrder: with several workers, versions of one
// item are never posted at the same time by one replica, and none is requeued.
func TestOneReplicaPostsVersionsOfAnItemInOrder(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{Latency: 20 * time.Millisecond})
	var mu sync.Mutex
	inFlight, overlaps := 0, 0
	d := r.deps(r.topo.Consumer)
	d.Importer = hookImporter{inner: r.snow, hook: func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		inFlight++
		if inFlight > 1 {
			overlaps++
		}
		return nil
	}, after: func(string) {
		mu.Lock()
		defer mu.Unlock()
		inFlight--
	}}
	base := item("ord-3", "", "DNS", 7, "2026-10-01T08:00:00Z")
	var last string
	for i := range 8 {
		v := base
		v.Title = "Dangling CNAME, version " + string(rune('A'+i))
		last = v.Title
		r.publish(t, v)
	}
	c := r.run(t, d, consumer.Options{Concurrency: 8, Mapping: mapping.DefaultOptions(), FetchWait: 300 * time.Millisecond})
	r.waitDrained(t)
	if overlaps != 0 {
		t.Errorf("%d posts of one item overlapped in one replica", overlaps)
	}
	if in := incidentOf(t, r.sim, "ord-3"); in.ShortDescription != last {
		t.Errorf("incident says %q, want the last version %q", in.ShortDescription, last)
	}
	if s := c.Stats(); s.Requeued != 0 {
		t.Errorf("%d requeued within one replica, want 0", s.Requeued)
	}
}
