package replay_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/replay"
)

// openedAndResolved publishes the item's opened and closed events and delivers them
// with resolve_on_close; it returns the consumer options used.
func (r *rig) openedAndResolved(t *testing.T, it ionix.ActionItem) consumer.Options {
	t.Helper()
	pub := publisher.New(r.js, "")
	for n, ev := range []ionix.Event{ionix.EventOpened, ionix.EventClosed} {
		raw, _ := json.Marshal(it)
		if _, err := pub.PublishEvent(context.Background(), raw, it, publisher.Publication{Event: ev, N: n}); err != nil {
			t.Fatal(err)
		}
	}
	o := opts()
	o.ResolveOnClose = true
	r.deliverWith(t, o, func() bool { return len(r.sim.Incidents()) == 1 && r.sim.Incidents()[0].State == mapping.StateResolved })
	return o
}

// TestReplayDoesNotReopenOnTheWay: with resolve_on_close, replaying an item's opened
// and closed events re-sends both in order and never asks ServiceNow to reopen the
// resolved incident (the opened event is older than the closing the ledger holds).
func TestReplayDoesNotReopenOnTheWay(t *testing.T) {
	r := newRig(t)
	it := item("rr-1", "Public S3 bucket")
	o := r.openedAndResolved(t, it)
	seen := len(r.sim.Requests())

	p, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1}, replay.Options{Consumer: o})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.Reopened != 0 || p.Stats.Resolved != 1 || p.Stats.Requeued != 0 {
		t.Errorf("replay stats %+v: want the closing re-sent, nothing reopened, nothing requeued (a plain re-post cannot undo the resolving)", p.Stats)
	}
	for _, req := range r.sim.Requests()[seen:] {
		if req.Fields["u_state"] == mapping.StateInProgress {
			t.Errorf("the replay asked ServiceNow to reopen the incident: %v", req.Fields)
		}
	}
	if in := r.sim.Incidents()[0]; in.State != mapping.StateResolved {
		t.Errorf("incident state %q after the replay, want resolved", in.State)
	}
	if tk, _, _ := ledger.New(r.topo.Tickets).Get(context.Background(), it.ID); tk.Status != ledger.StatusResolved {
		t.Errorf("ledger status %q after the replay, want resolved", tk.Status)
	}
}

// TestMissingOnlyReplaySkipsClosingsOfPresentIncidents: --missing-only re-sends
// neither the opened nor the closing event of an item whose incident exists.
func TestMissingOnlyReplaySkipsClosingsOfPresentIncidents(t *testing.T) {
	r := newRig(t)
	o := r.openedAndResolved(t, item("rr-2", "Public blob container"))
	before := r.sim.ImportCount()
	p, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1, MissingOnly: true}, replay.Options{Consumer: o, Present: func(context.Context, string) (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.sim.ImportCount() - before; n != 0 || p.Stats.Present != 2 {
		t.Errorf("%d imports, stats %+v: want nothing re-sent, both events counted present", n, p.Stats)
	}
}

// TestReplayCreatesNoIncidentForAnItemClosedBeforeIt: the ledger holds the closing of
// an item recorded before the item had an incident (its opened post failed and the
// closing came first); a --missing-only replay creates no incident for it.
func TestReplayCreatesNoIncidentForAnItemClosedBeforeIt(t *testing.T) {
	r := newRig(t)
	it := item("rr-3", "Public S3 bucket, closed early")
	pub := publisher.New(r.js, "")
	for n, ev := range []ionix.Event{ionix.EventOpened, ionix.EventClosed} {
		raw, _ := json.Marshal(it)
		if _, err := pub.PublishEvent(context.Background(), raw, it, publisher.Publication{Event: ev, N: n}); err != nil {
			t.Fatal(err)
		}
	}
	stream := r.topo.Stream.CachedInfo().Created.UTC().Format(time.RFC3339Nano)
	if err := ledger.New(r.topo.Tickets).Put(context.Background(), it.ID, ledger.Ticket{
		Fingerprint: it.Fingerprint(), Status: ledger.StatusResolved, StreamSeq: 2, Stream: stream, SentAt: time.Now().UTC(), PostedBy: "main",
	}); err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.ResolveOnClose = true
	p, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1, MissingOnly: true}, replay.Options{Consumer: o, Present: func(context.Context, string) (bool, error) { return false, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.sim.Incidents()); n != 0 {
		t.Errorf("%d incident(s) after a replay of an item closed before it had one; stats %+v", n, p.Stats)
	}
}
