package consumer_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// publishNth publishes the item's n-th event as the poller does (ionix.MsgIDNth).
func (r *rig) publishNth(t *testing.T, it ionix.ActionItem, ev ionix.Event, n int) {
	t.Helper()
	r.publishAs(t, it, publisher.Publication{Event: ev, N: n})
}

// publishReopening publishes the item's n-th event as the poller publishes a reopening.
func (r *rig) publishReopening(t *testing.T, it ionix.ActionItem, n int) {
	t.Helper()
	r.publishAs(t, it, publisher.Publication{Event: ionix.EventOpened, N: n, Reopened: true})
}

func (r *rig) publishAs(t *testing.T, it ionix.ActionItem, pub publisher.Publication) {
	t.Helper()
	open := pub.Event == ionix.EventOpened
	it.IsOpen = &open
	raw, err := json.Marshal(it)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := r.pub.PublishEvent(context.Background(), raw, it, pub)
	if err != nil || dup {
		t.Fatalf("publish %+v: duplicate %v, %v", pub, dup, err)
	}
}

// copyAs publishes a copy of the stream's message seq marked, as the consumer's
// re-drive or requeue marks it, with header (dlq.HeaderRedrivenFrom or
// topology.HeaderRequeuedFrom) naming seq, plus the extra headers given.
func (r *rig) copyAs(t *testing.T, seq uint64, header string, extra ...string) {
	t.Helper()
	ctx := context.Background()
	orig, err := r.topo.Stream.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(orig.Subject)
	for k, v := range orig.Header {
		msg.Header[k] = v
	}
	msg.Header.Set(header, strconv.FormatUint(seq, 10))
	for i := 0; i+1 < len(extra); i += 2 {
		msg.Header.Set(extra[i], extra[i+1])
	}
	msg.Header.Del(nats.MsgIdHdr)
	msg.Data = orig.Data
	if _, err := r.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

// TestReopenedItemReopensItsIncident: with resolve_on_close, an item IONIX closes,
// detects again and closes once more gives one incident that goes Resolved, In
// Progress, Resolved — each step one post, none repeated on redelivery.
func TestReopenedItemReopensItsIncident(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	it := item("reopen-1", "Exposed admin panel on ops.example.com", "Vulnerability", 8, "2026-09-01T10:00:00Z")
	c := r.startWith(t, r.topo.Consumer, consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond})
	tickets := ledger.New(r.topo.Tickets)
	steps := []struct {
		name      string
		ev        ionix.Event
		at        string // last_closed_at or last_opened_at
		wantState string
		wantNotes string
		wantLedge string
	}{
		{"opened", ionix.EventOpened, "", "1", "", "inserted"},
		{"closed", ionix.EventClosed, "2026-11-20T09:30:00Z", mapping.StateResolved, "Closed in IONIX at 2026-11-20 09:30:00 UTC", ledger.StatusResolved},
		{"reopened", ionix.EventOpened, "2026-11-21T08:00:00Z", mapping.StateInProgress, "Reopened in IONIX at 2026-11-21 08:00:00 UTC", ledger.StatusReopened},
		{"closed again", ionix.EventClosed, "2026-11-22T07:15:00Z", mapping.StateResolved, "Closed in IONIX at 2026-11-22 07:15:00 UTC", ledger.StatusResolved},
	}
	for n, st := range steps {
		ev := it
		if st.ev == ionix.EventClosed {
			ev.LastClosedAt = st.at
		} else {
			ev.LastOpenedAt = st.at
		}
		if st.name == "reopened" {
			r.publishReopening(t, ev, n)
		} else {
			r.publishNth(t, ev, st.ev, n)
		}
		testkit.WaitFor(t, 10*time.Second, st.name+" received", func() bool { return c.Stats().Received == int64(n+1) })
		r.waitDrained(t)
		in := incidentOf(t, r.sim, it.ID)
		if in.State != st.wantState || !strings.Contains(in.CloseNotes, st.wantNotes) {
			t.Errorf("%s: incident state %q, close notes %q; want %q and notes with %q", st.name, in.State, in.CloseNotes, st.wantState, st.wantNotes)
		}
		if in.Inserts != 1 || in.Updates != n {
			t.Errorf("%s: incident inserted %d and updated %d times, want 1 and %d", st.name, in.Inserts, in.Updates, n)
		}
		if tk, ok, _ := tickets.Get(context.Background(), it.ID); !ok || tk.Status != st.wantLedge {
			t.Errorf("%s: tickets %+v (found %v), want status %q", st.name, tk, ok, st.wantLedge)
		}
	}
	if s := c.Stats(); s.Created != 1 || s.Resolved != 2 || s.Reopened != 1 || s.Duplicates != 0 {
		t.Errorf("stats %+v: want 1 created, 2 resolved, 1 reopened", s)
	}
	if n := r.sim.ImportCount(); n != 4 {
		t.Errorf("%d imports, want 4 (one per event)", n)
	}
}

// TestOpenedEventsDoNotReopenWithoutAClosing: with resolve_on_close, a changed item
// (an opened event after another opened event) updates its incident without touching
// its state, and an incident resolved by a closing event is not reopened by an older
// opened event coming back (here re-driven from the dead-letter stream).
func TestOpenedEventsDoNotReopenWithoutAClosing(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	it := item("reopen-2", "Weak TLS on mail.example.com", "PKI", 7.5, "2026-09-01T10:00:00Z")
	c := r.startWith(t, r.topo.Consumer, consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond})
	r.publishNth(t, it, ionix.EventOpened, 0)
	changed := it
	changed.Urgency = 9.1
	r.publishNth(t, changed, ionix.EventOpened, 1)
	testkit.WaitFor(t, 10*time.Second, "both versions posted", func() bool { return c.Stats().Created == 1 && c.Stats().Updated == 1 })
	if in := incidentOf(t, r.sim, it.ID); in.State != "1" || in.Urgency != "1" {
		t.Errorf("changed item: incident state %q urgency %q, want state 1 (untouched) and urgency 1", in.State, in.Urgency)
	}

	r.publishNth(t, changed, ionix.EventClosed, 2)
	testkit.WaitFor(t, 10*time.Second, "the closing", func() bool { return c.Stats().Resolved == 1 })
	// The first opened event (stream sequence 1) re-driven after a fix.
	r.copyAs(t, 1, dlq.HeaderRedrivenFrom)
	testkit.WaitFor(t, 10*time.Second, "the re-driven event", func() bool { return c.Stats().Received == 4 })
	r.waitDrained(t)
	if in := incidentOf(t, r.sim, it.ID); in.State != mapping.StateResolved {
		t.Errorf("incident state %q after an older opened event, want it to stay resolved", in.State)
	}
	if s := c.Stats(); s.Reopened != 0 || s.Superseded != 1 {
		t.Errorf("stats %+v: want nothing reopened, the older event superseded", s)
	}
}

// TestRequeuedCopiesArePostedAgain: a requeued copy (the newest version put back at
// the end of the stream because an older post may have landed after it) is posted
// even though the tickets already records its original — for a closing and for a
// reopening, with the same record as the original.
func TestRequeuedCopiesArePostedAgain(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	it := item("requeue-1", "Open SMB on files.example.com", "Vulnerability", 9, "2026-09-01T10:00:00Z")
	c := r.startWith(t, r.topo.Consumer, consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond})
	ctx := context.Background()
	late := func(record mapping.Record) { // an older post landing late, behind the consumer's back
		t.Helper()
		if _, err := r.snow.Import(ctx, record); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name      string
		ev        ionix.Event
		lateState mapping.Record // what lands late after the event's post
		wantState string
		headers   []string // what the requeue adds to the copy
	}{
		{"closing", ionix.EventClosed, mapping.ReopeningRecord(it, mapping.DefaultOptions(), time.Time{}), mapping.StateResolved, nil},
		{"reopening", ionix.EventOpened, mapping.ClosingRecord(it, mapping.DefaultOptions(), time.Time{}), mapping.StateInProgress, []string{topology.HeaderRequeuedReopen, "true"}},
	}
	r.publishNth(t, it, ionix.EventOpened, 0)
	testkit.WaitFor(t, 10*time.Second, "the incident", func() bool { return c.Stats().Created == 1 })
	for n, st := range steps {
		if st.ev == ionix.EventOpened {
			r.publishReopening(t, it, n+1)
		} else {
			r.publishNth(t, it, st.ev, n+1)
		}
		testkit.WaitFor(t, 10*time.Second, st.name+" posted", func() bool { return incidentOf(t, r.sim, it.ID).State == st.wantState })
		seq := r.lastSeq(t)
		late(st.lateState)
		if got := incidentOf(t, r.sim, it.ID).State; got == st.wantState {
			t.Fatalf("%s: the late post did not change the state (%q)", st.name, got)
		}
		r.copyAs(t, seq, topology.HeaderRequeuedFrom, st.headers...)
		testkit.WaitFor(t, 10*time.Second, st.name+"'s requeued copy to put the state back", func() bool {
			return incidentOf(t, r.sim, it.ID).State == st.wantState
		})
	}
	r.waitDrained(t)
	if s := c.Stats(); s.Duplicates != 0 || s.FilteredClosed != 0 {
		t.Errorf("stats %+v: a requeued copy was taken for a repeat", s)
	}
}

// lastSeq is the stream's last sequence.
func (r *rig) lastSeq(t *testing.T) uint64 {
	t.Helper()
	info, err := r.topo.Stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// stateHookImporter holds a post that sets the incident state hold (a closing: "6")
// until release fires, and calls landed after each other post ServiceNow answered.
type stateHookImporter struct {
	inner   consumer.Importer
	hold    string
	release *signal
	landed  func()
}

func (h stateHookImporter) Import(ctx context.Context, record map[string]string) (servicenow.Result, error) {
	held := record["u_"+mapping.FieldState] == h.hold
	if held {
		if err := h.release.wait(ctx); err != nil {
			return servicenow.Result{}, err
		}
	}
	res, err := h.inner.Import(ctx, record)
	if !held && h.landed != nil {
		h.landed()
	}
	return res, err
}

// TestClosingLandingAfterAReopeningOnAnotherReplica: replica A posts an item's closing,
// replica B its reopening (the next event) at the same moment, before A recorded the
// closing — so B posts the reopening as a plain update — and A's closing reaches
// ServiceNow last. The incident must end open (In Progress), in both orders of the
// tickets writes.
func TestClosingLandingAfterAReopeningOnAnotherReplica(t *testing.T) {
	t.Parallel()
	it := item("race-1", "Open VNC on desk.example.com", "Vulnerability", 8.5, "2026-10-01T08:00:00Z")
	for _, tt := range []struct {
		name string
		// closingRecordedFirst makes B, once its post landed, wait until A recorded
		// the closing.
		closingRecordedFirst bool
	}{
		{"closing recorded last", false},
		{"closing recorded first", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			tickets := ledger.New(r.topo.Tickets)
			// One worker, held by a hook, and nothing pulled ahead: the next version goes to the other replica.
			o := consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond}
			reopenLanded := newSignal()
			a := r.deps(r.topo.Consumer)
			a.Importer = stateHookImporter{inner: r.snow, hold: mapping.StateResolved, release: reopenLanded}
			r.publishNth(t, it, ionix.EventOpened, 0)
			ca := r.run(t, a, o)
			testkit.WaitFor(t, 10*time.Second, "the incident", func() bool { return ca.Stats().Created == 1 })
			r.publishNth(t, it, ionix.EventClosed, 1)
			testkit.WaitFor(t, 10*time.Second, "replica A to hold the closing", func() bool { return ca.Stats().Received == 2 })

			b := r.deps(r.topo.Consumer)
			b.Importer = stateHookImporter{inner: r.snow, hold: "never", release: newSignal(), landed: func() {
				reopenLanded.fire()
				if tt.closingRecordedFirst {
					testkit.WaitFor(t, 10*time.Second, "replica A to record the closing", func() bool {
						tk, ok, _ := tickets.Get(context.Background(), it.ID)
						return ok && tk.Status == ledger.StatusResolved
					})
				}
			}}
			cb := r.run(t, b, o)
			reopened := it
			reopened.LastOpenedAt = "2026-11-21T08:00:00Z"
			r.publishReopening(t, reopened, 2)
			testkit.WaitFor(t, 20*time.Second, "the incident open again after the requeue", func() bool {
				return ca.Stats().Requeued+cb.Stats().Requeued == 1 && incidentOf(t, r.sim, it.ID).State == mapping.StateInProgress
			})
			r.waitDrained(t)
			if in := incidentOf(t, r.sim, it.ID); in.State != mapping.StateInProgress || in.Inserts != 1 {
				t.Errorf("incident %+v: want one incident, In Progress", in)
			}
			if tk, _, _ := tickets.Get(context.Background(), it.ID); tk.Status != ledger.StatusReopened {
				t.Errorf("ledger status %q, want reopened", tk.Status)
			}
		})
	}
}
