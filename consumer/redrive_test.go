package consumer_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

const dnsSubject = "ionix.action_items.opened.dns"

// poisonMsg is a message the consumer would dead-letter: an urgency out of range.
func poisonMsg(id string) *nats.Msg {
	m := nats.NewMsg(dnsSubject)
	m.Header.Set(topology.HeaderEvent, string(ionix.EventOpened))
	m.Header.Set(topology.HeaderMsgID, id+":opened:fp")
	m.Header.Set("X-Trace", "trace-"+id)
	m.Data = []byte(`{"id":"` + id + `","title":"Urgency out of range","type":"DNS","urgency":11}`)
	return m
}

// storeDeadLetters publishes msgs to the main stream, takes them from the durable
// consumer (no consumer runs) and stores each as a dead letter, as the consumer
// does. It returns their main-stream sequences; their dead-letter sequences are
// 1..len(msgs) on a fresh rig.
func storeDeadLetters(t *testing.T, r *rig, msgs ...*nats.Msg) []uint64 {
	t.Helper()
	ctx := context.Background()
	for _, m := range msgs {
		if _, err := r.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dl := dlq.New(r.js, r.topo.Names)
	batch, err := r.topo.Consumer.Fetch(len(msgs), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if err := dl.Put(ctx, m, meta.Sequence.Stream, "invalid action item: urgency 11 outside 0-10"); err != nil {
			t.Fatal(err)
		}
		if err := m.Term(); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, meta.Sequence.Stream)
	}
	if len(seqs) != len(msgs) {
		t.Fatalf("fetched %d of %d messages (%v)", len(seqs), len(msgs), batch.Error())
	}
	return seqs
}

// putDeadLetter publishes a dead letter straight to the dead-letter stream, with
// the dead-letter headers given (a dead letter from an older configuration).
func putDeadLetter(t *testing.T, r *rig, headers map[string]string) uint64 {
	t.Helper()
	m := nats.NewMsg(r.topo.Names.DLQSubject("opened.dns"))
	for k, v := range headers {
		m.Header.Set(k, v)
	}
	m.Data = poisonMsg("foreign-1").Data
	ack, err := r.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func streamMsgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func countDeadLetters(t *testing.T, dl *dlq.Queue) uint64 {
	t.Helper()
	n, err := dl.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRedriveRestoresTheOriginalMessageAndDeletesTheDeadLetter(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	orig := poisonMsg("bad-1")
	seqs := storeDeadLetters(t, r, orig)
	dl := dlq.New(r.js, r.topo.Names)

	res, err := dl.Redrive(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := dlq.RedriveResult{DLQSeq: 1, StreamSeq: seqs[0], Subject: dnsSubject, ID: "bad-1", NewSeq: seqs[0] + 1}
	if res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	got, err := r.topo.Stream.GetMsg(ctx, res.NewSeq)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != dnsSubject || string(got.Data) != string(orig.Data) {
		t.Errorf("re-driven message = %s %s, want %s %s", got.Subject, got.Data, dnsSubject, orig.Data)
	}
	for _, h := range []struct{ key, want string }{
		{topology.HeaderEvent, "opened"},
		{"X-Trace", "trace-bad-1"},
		{dlq.HeaderRedrivenFrom, strconv.FormatUint(seqs[0], 10)},
		{topology.HeaderMsgID, "redrive:" + topology.DefaultDLQStream + ":1"},
	} {
		if v := got.Header.Get(h.key); v != h.want {
			t.Errorf("header %s = %q, want %q", h.key, v, h.want)
		}
	}
	for k := range got.Header {
		if strings.HasPrefix(strings.ToLower(k), "ionix-dlq-") {
			t.Errorf("re-driven message keeps the dead-letter header %s", k)
		}
	}
	if n := countDeadLetters(t, dl); n != 0 {
		t.Errorf("%d dead letters after the re-drive, want 0", n)
	}

	// Retrying the same dead letter finds nothing and publishes nothing.
	if _, err := dl.Redrive(ctx, 1); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("second re-drive: %v, want ErrDeadLetterNotFound", err)
	}
	if n := streamMsgs(t, r.topo.Stream); n != 2 {
		t.Errorf("main stream holds %d messages, want 2 (the original and one re-drive)", n)
	}
}

// TestRedriveAfterAnInterruptedRedrivePublishesNothingTwice: an earlier re-drive
// published the copy but stopped before deleting the dead letter; the retry is
// dropped by the stream's de-duplication and deletes the dead letter.
func TestRedriveAfterAnInterruptedRedrivePublishesNothingTwice(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	storeDeadLetters(t, r, poisonMsg("bad-1"))
	dl := dlq.New(r.js, r.topo.Names)

	earlier := poisonMsg("bad-1")
	earlier.Header.Del(topology.HeaderMsgID)
	ack, err := r.js.PublishMsg(ctx, earlier, jetstream.WithMsgID("redrive:"+topology.DefaultDLQStream+":1"))
	if err != nil {
		t.Fatal(err)
	}
	before := streamMsgs(t, r.topo.Stream)

	res, err := dl.Redrive(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.NewSeq != ack.Sequence {
		t.Errorf("result = %+v, want a duplicate of sequence %d", res, ack.Sequence)
	}
	if n := streamMsgs(t, r.topo.Stream); n != before {
		t.Errorf("main stream holds %d messages, want still %d", n, before)
	}
	if n := countDeadLetters(t, dl); n != 0 {
		t.Errorf("%d dead letters left, want 0", n)
	}
}

func TestRedriveErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers map[string]string // of a dead letter put on the dead-letter stream; nil: none
		seq     uint64            // when no dead letter is put
		want    error
		wantMsg string
	}{
		{name: "no such dead letter", seq: 42, want: dlq.ErrNotFound, wantMsg: "42"},
		{name: "subject outside the stream", headers: map[string]string{
			topology.HeaderEvent: "opened", topology.HeaderDLQSubject: "ionix.findings.opened.dns",
			topology.HeaderDLQStreamSeq: "7", topology.HeaderDLQReason: "invalid",
		}, want: dlq.ErrSubjectNotInStream, wantMsg: `"ionix.findings.opened.dns"`},
		{name: "wildcard subject", headers: map[string]string{
			topology.HeaderDLQSubject: "ionix.action_items.opened.*", topology.HeaderDLQStreamSeq: "7",
		}, want: dlq.ErrSubjectNotInStream, wantMsg: "ionix.action_items.opened.*"},
		{name: "no original subject", headers: map[string]string{
			topology.HeaderDLQStreamSeq: "7",
		}, want: dlq.ErrSubjectNotInStream, wantMsg: topology.HeaderDLQSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			dl := dlq.New(r.js, r.topo.Names)
			seq := tt.seq
			if tt.headers != nil {
				seq = putDeadLetter(t, r, tt.headers)
			}
			before := countDeadLetters(t, dl)
			_, err := dl.Redrive(context.Background(), seq)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Redrive(%d) = %v, want %v", seq, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not name %s", err, tt.wantMsg)
			}
			if n := countDeadLetters(t, dl); n != before {
				t.Errorf("%d dead letters after a failed re-drive, want %d (kept)", n, before)
			}
			if n := streamMsgs(t, r.topo.Stream); n != 0 {
				t.Errorf("main stream holds %d messages after a failed re-drive", n)
			}
		})
	}
}

func TestRedriveAllAndCount(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	storeDeadLetters(t, r, poisonMsg("bad-1"), poisonMsg("bad-2"), poisonMsg("bad-3"), poisonMsg("bad-4"))
	foreign := putDeadLetter(t, r, map[string]string{topology.HeaderDLQSubject: "ionix.findings.opened.dns"})
	dl := dlq.New(r.js, r.topo.Names)
	// A gap in the dead-letter stream: the second one is re-driven alone.
	if _, err := dl.Redrive(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if n := countDeadLetters(t, dl); n != 4 {
		t.Fatalf("Count = %d, want 4", n)
	}

	var calls [][2]int
	n, err := dl.RedriveAll(ctx, func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if n != 3 {
		t.Errorf("re-drove %d, want 3", n)
	}
	if !errors.Is(err, dlq.ErrSubjectNotInStream) || !strings.Contains(err.Error(), "ionix.findings.opened.dns") {
		t.Errorf("error = %v, want the foreign dead letter named", err)
	}
	if want := [][2]int{{1, 4}, {2, 4}, {3, 4}, {4, 4}}; !slices.Equal(calls, want) {
		t.Errorf("progress = %v, want %v", calls, want)
	}
	dls, err := dl.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].DLQSeq != foreign {
		t.Errorf("left %+v, want only the foreign dead letter %d", dls, foreign)
	}
	if n := streamMsgs(t, r.topo.Stream); n != 8 {
		t.Errorf("main stream holds %d messages, want 8 (4 originals, 4 re-drives)", n)
	}

	// Nothing left that can be re-driven: the foreign one stays.
	n, err = dl.RedriveAll(ctx, nil)
	if n != 0 || !errors.Is(err, dlq.ErrSubjectNotInStream) {
		t.Errorf("second RedriveAll = %d, %v; want 0 and the foreign dead letter", n, err)
	}
}

func TestRedriveAllOnAnEmptyDeadLetterStream(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	dl := dlq.New(r.js, r.topo.Names)
	called := false
	n, err := dl.RedriveAll(context.Background(), func(int, int) { called = true })
	if n != 0 || err != nil || called {
		t.Errorf("RedriveAll = %d, %v (progress called %v); want 0, nil, no progress", n, err, called)
	}
}

func TestPurgeDeadLetters(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	dl := dlq.New(r.js, r.topo.Names)
	storeDeadLetters(t, r, poisonMsg("bad-1"), poisonMsg("bad-2"), poisonMsg("bad-3"))

	for _, step := range []struct {
		name        string
		wantPurged  uint64
		wantCountAf uint64
	}{
		{"three dead letters", 3, 0},
		{"nothing left", 0, 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			n, err := dl.Purge(ctx)
			if err != nil || n != step.wantPurged {
				t.Errorf("Purge = %d, %v; want %d", n, err, step.wantPurged)
			}
			if c := countDeadLetters(t, dl); c != step.wantCountAf {
				t.Errorf("Count after purge = %d, want %d", c, step.wantCountAf)
			}
		})
	}
	// The stream goes on after a purge; a re-drive of a purged sequence finds nothing.
	if _, err := dl.Redrive(ctx, 1); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("re-drive of a purged dead letter: %v", err)
	}
	storeDeadLetters(t, r, poisonMsg("bad-4"))
	if c := countDeadLetters(t, dl); c != 1 {
		t.Errorf("Count = %d after a new dead letter, want 1", c)
	}
}

// TestDeadLetterRedrivenAfterItsCauseIsFixedBecomesAnIncident is the point of
// re-driving: ServiceNow rejects an item (an onBefore transform script answering
// "error"), the consumer dead-letters it; the script is fixed and the dead letter
// re-driven, and the running consumer posts it as a first delivery. With no
// incident yet it inserts one; when an older version already made the incident,
// coalesce turns the post into an update.
func TestDeadLetterRedrivenAfterItsCauseIsFixedBecomesAnIncident(t *testing.T) {
	t.Parallel()
	const rejectedTitle = "Rejected until the transform script is fixed"
	tests := []struct {
		name        string
		before      []ionix.ActionItem // accepted before the rejected one
		wantInserts int
		wantUpdates int
		// consumer counts at the end: the re-drive is one of them
		wantCreated, wantUpdated int64
	}{
		{name: "no incident yet", wantInserts: 1, wantCreated: 1},
		{name: "incident of an older version exists",
			before:      []ionix.ActionItem{item("fix-1", "Open RDP on rdp.example.net", "Vulnerability", 8, "2024-01-01T00:00:00Z")},
			wantInserts: 1, wantUpdates: 1, wantCreated: 1, wantUpdated: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var reject atomic.Bool
			reject.Store(true)
			filter := mapping.Filter{UrgencyThreshold: 1}
			r := newRig(t, filter, emulator.Options{OnBefore: func(row map[string]string) (string, string) {
				if reject.Load() && row["u_name"] == rejectedTitle {
					return "error", "rejected by onBefore script"
				}
				return "", ""
			}})
			c := r.start(t, r.topo.Consumer, filter)
			dl := dlq.New(r.js, r.topo.Names)
			if len(tt.before) > 0 {
				r.publish(t, tt.before...)
				testkit.WaitFor(t, 20*time.Second, "the older version's incident", func() bool { return c.Stats().Created == 1 })
			}
			rejected := item("fix-1", rejectedTitle, "Vulnerability", 9.5, "2024-01-01T00:00:00Z")
			r.publish(t, rejected)
			testkit.WaitFor(t, 20*time.Second, "the rejected item to be dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })
			r.waitDrained(t)

			dls, err := dl.List(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(dls) != 1 || dls[0].ID != "fix-1" || !strings.Contains(dls[0].Reason, "rejected by onBefore script") {
				t.Fatalf("dead letters = %+v, want fix-1 rejected by the script", dls)
			}

			reject.Store(false) // the ServiceNow admin fixes the transform script
			res, err := dl.Redrive(context.Background(), dls[0].DLQSeq)
			if err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 20*time.Second, "the re-driven item to become an incident", func() bool {
				for _, in := range r.sim.Incidents() {
					if in.CorrelationID == "ionix:fix-1" && in.ShortDescription == rejectedTitle {
						return true
					}
				}
				return false
			})
			r.waitDrained(t)

			in := incidentOf(t, r.sim, "fix-1")
			if in.Inserts != tt.wantInserts || in.Updates != tt.wantUpdates {
				t.Errorf("%s: %d inserts, %d updates; want %d, %d", in.Number, in.Inserts, in.Updates, tt.wantInserts, tt.wantUpdates)
			}
			if n := countDeadLetters(t, dl); n != 0 {
				t.Errorf("%d dead letters after the re-drive, want 0", n)
			}
			s := c.Stats()
			if s.DeadLettered != 1 || s.Created != tt.wantCreated || s.Updated != tt.wantUpdated {
				t.Errorf("stats = %+v, want 1 dead letter, %d created, %d updated", s, tt.wantCreated, tt.wantUpdated)
			}
			tk, found, err := ledger.New(r.topo.Tickets).Get(context.Background(), "fix-1")
			if err != nil || !found || tk.StreamSeq != res.StreamSeq || tk.Number != in.Number {
				t.Errorf("ledger = %+v (found %v, %v), want the original sequence %d (a re-drive is as old as its original) and %s", tk, found, err, res.StreamSeq, in.Number)
			}
		})
	}
}

// TestRedrivenOlderVersionDoesNotOverwriteANewerOne: a dead letter of an older
// version, re-driven after a newer version was ticketed, is acknowledged without a
// post; the incident keeps the newer version.
func TestRedrivenOlderVersionDoesNotOverwriteANewerOne(t *testing.T) {
	t.Parallel()
	const rejectedTitle = "Rejected older version"
	filter := mapping.Filter{UrgencyThreshold: 1}
	r := newRig(t, filter, emulator.Options{OnBefore: func(row map[string]string) (string, string) {
		if row["u_name"] == rejectedTitle {
			return "error", "rejected by onBefore script"
		}
		return "", ""
	}})
	c := r.start(t, r.topo.Consumer, filter)
	dl := dlq.New(r.js, r.topo.Names)
	v1 := item("stale-1", rejectedTitle, "Vulnerability", 6, "2024-01-01T00:00:00Z")
	v2 := item("stale-1", "Newer version", "Vulnerability", 9, "2024-01-01T00:00:00Z")
	r.publish(t, v1)
	testkit.WaitFor(t, 20*time.Second, "the older version dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })
	r.publish(t, v2)
	testkit.WaitFor(t, 20*time.Second, "the newer version's incident", func() bool { return c.Stats().Created == 1 })
	dls, err := dl.List(context.Background(), 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
	if _, err := dl.Redrive(context.Background(), dls[0].DLQSeq); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the re-driven message handled", func() bool { return c.Stats().Superseded == 1 })
	r.waitDrained(t)
	if in := incidentOf(t, r.sim, "stale-1"); in.ShortDescription != v2.Title {
		t.Errorf("incident says %q, want the newer %q", in.ShortDescription, v2.Title)
	}
}

// TestRedriveOfACopyKeepsItsOriginal: a dead letter that was itself a copy (a
// requeued version, or a message re-driven before) keeps naming the message it
// copied, so it is dated as old as that, not as its own later sequence.
func TestRedriveOfACopyKeepsItsOriginal(t *testing.T) {
	t.Parallel()
	for _, header := range []string{topology.HeaderRequeuedFrom, dlq.HeaderRedrivenFrom} {
		t.Run(header, func(t *testing.T) {
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			m := poisonMsg("copy-1")
			m.Header.Set(header, "1")
			storeDeadLetters(t, r, m)
			res, err := dlq.New(r.js, r.topo.Names).Redrive(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.topo.Stream.GetMsg(context.Background(), res.NewSeq)
			if err != nil {
				t.Fatal(err)
			}
			if v := got.Header.Get(header); v != "1" {
				t.Errorf("re-driven copy: %s = %q, want 1 (the original)", header, v)
			}
			for _, h := range []string{topology.HeaderRequeuedFrom, dlq.HeaderRedrivenFrom} {
				if h != header && got.Header.Get(h) != "" {
					t.Errorf("re-driven copy also has %s = %q", h, got.Header.Get(h))
				}
			}
		})
	}
}
