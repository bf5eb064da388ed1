package consumer_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// publishClosed publishes the closing event of each item, closed at closedAt.
func (r *rig) publishClosed(t *testing.T, closedAt string, items ...ionix.ActionItem) {
	t.Helper()
	for _, it := range items {
		closed := false
		it.IsOpen, it.LastClosedAt = &closed, closedAt
		raw, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.pub.Publish(context.Background(), raw, it, ionix.EventClosed); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClosingEvents: with resolve_on_close a closing event resolves the item's
// incident through the same import table; without it, or for an item never
// ticketed, the event is acknowledged and counted, and nothing is posted.
func TestClosingEvents(t *testing.T) {
	t.Parallel()
	ticketed := item("close-1", "Expired certificate on vpn.example.com", "PKI", 8, "2026-09-01T10:00:00Z")
	never := item("close-2", "Open port 23 on legacy.example.com", "Vulnerability", 9, "2026-09-01T10:00:00Z")
	for _, tt := range []struct {
		name           string
		resolveOnClose bool
		wantState      string
	}{
		{"resolve_on_close off (the default)", false, "1"},
		{"resolve_on_close on", true, mapping.StateResolved},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			r.publish(t, ticketed)
			c := r.startWith(t, r.topo.Consumer, consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: tt.resolveOnClose, FetchWait: 300 * time.Millisecond})
			testkit.WaitFor(t, 10*time.Second, "the incident", func() bool { return c.Stats().Created == 1 })
			r.publishClosed(t, "2026-11-20T09:30:00Z", ticketed, never)
			testkit.WaitFor(t, 10*time.Second, "the closing events", func() bool { return c.Stats().Received == 3 })
			r.waitDrained(t)

			s := c.Stats()
			in := incidentOf(t, r.sim, "close-1")
			if in.State != tt.wantState {
				t.Errorf("incident state %q, want %q", in.State, tt.wantState)
			}
			if n := len(r.sim.Incidents()); n != 1 {
				t.Errorf("%d incidents; a closing event must never create one", n)
			}
			if tt.resolveOnClose {
				if s.Resolved != 1 || s.FilteredClosed != 1 {
					t.Errorf("stats %+v: want 1 resolved, 1 closing event for an untracked item", s)
				}
				if !strings.Contains(in.CloseNotes, "2026-11-20 09:30:00 UTC") {
					t.Errorf("close notes %q do not give the closing time", in.CloseNotes)
				}
				if in.ShortDescription != ticketed.Title || in.Inserts != 1 {
					t.Errorf("incident %+v: the resolving re-post must update the same incident with the same fields", in)
				}
				tk, ok, _ := ledger.New(r.topo.Tickets).Get(context.Background(), "close-1")
				if !ok || tk.Status != ledger.StatusResolved {
					t.Errorf("ledger %+v (found %v): want status resolved", tk, ok)
				}
			} else if s.FilteredClosed != 2 || s.Resolved != 0 || r.sim.ImportCount() != 1 {
				t.Errorf("stats %+v, %d imports: want both closing events acked without a post", s, r.sim.ImportCount())
			}
			if n := len(r.deadLetters(t)); n != 0 {
				t.Errorf("%d dead letters", n)
			}
		})
	}
}

// TestRepeatedClosingEvent: a second closing event of an incident already resolved
// (IONIX reporting the same closure again, under another message id) is posted again
// — the incident stays resolved and single, and the ledger moves to the newer event,
// so that an older reopening still being retried is superseded by it. A redelivery of
// the closing already posted is acknowledged without a post.
func TestRepeatedClosingEvent(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	it := item("close-3", "Dangling DNS record", "DNS", 7, "2026-09-01T10:00:00Z")
	r.publish(t, it)
	c := r.startWith(t, r.topo.Consumer, consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "the incident", func() bool { return c.Stats().Created == 1 })
	r.publishClosed(t, "2026-11-20T09:30:00Z", it)
	testkit.WaitFor(t, 10*time.Second, "the incident resolved", func() bool { return c.Stats().Resolved == 1 })
	// The same closing event again, under another message id.
	raw, _ := json.Marshal(it)
	msg := nats.NewMsg(ionix.Subject(topology.DefaultSubjectPrefix, ionix.EventClosed, it.Type))
	msg.Header.Set(topology.HeaderEvent, string(ionix.EventClosed))
	msg.Data = raw
	ack, err := r.js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the repeated closing event", func() bool { return c.Stats().Received == 3 })
	r.waitDrained(t)
	if n := importsOf(r.sim, "ionix:close-3"); n != 3 {
		t.Errorf("%d imports, want 3 (open, resolve, resolve again)", n)
	}
	if in := incidentOf(t, r.sim, it.ID); in.State != mapping.StateResolved {
		t.Errorf("incident state %q, want resolved", in.State)
	}
	if tk, _, _ := ledger.New(r.topo.Tickets).Get(context.Background(), it.ID); tk.StreamSeq != ack.Sequence || tk.Status != ledger.StatusResolved {
		t.Errorf("ledger %+v, want resolved at the repeated closing's sequence %d", tk, ack.Sequence)
	}
}
