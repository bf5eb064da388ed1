package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// rig is the whole pipeline on loopback: a real nats-server in process, the
// ServiceNow emulator over HTTP and the real client.
type rig struct {
	js   jetstream.JetStream
	topo *topology.Topology
	sim  *emulator.Server
	snow *servicenow.Client
	pub  *publisher.Publisher
}

func newRig(t *testing.T, filter mapping.Filter, simOpts emulator.Options) *rig {
	t.Helper()
	js := natstest.Connect(t, natstest.Start(t).URL())
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.Options{
		FilterSubjects: filter.FilterSubjects(topology.DefaultSubjectPrefix),
	})
	if err != nil {
		t.Fatal(err)
	}
	sim := emulator.New(simOpts)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	snow, err := servicenow.New(servicenow.Config{
		InstanceURL: ts.URL, ClientID: "ionix", ClientSecret: "ionix", Username: "ionix", Password: "ionix",
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return &rig{js: js, topo: topo, sim: sim, snow: snow, pub: publisher.New(js, "")}
}

// start runs a consumer over cons with the usual options until the test ends.
func (r *rig) start(t *testing.T, cons jetstream.Consumer, filter mapping.Filter) *consumer.Consumer {
	t.Helper()
	return r.startWith(t, cons, consumer.Options{Filter: filter, Mapping: mapping.DefaultOptions(), FetchWait: 500 * time.Millisecond})
}

func (r *rig) publish(t *testing.T, items ...ionix.ActionItem) {
	t.Helper()
	for _, it := range items {
		raw, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.pub.Publish(context.Background(), raw, it, ionix.EventOpened); err != nil {
			t.Fatal(err)
		}
	}
}

// waitDrained waits until the durable consumer has delivered the last message of the
// stream it matches and has nothing pending or unacked. (The server counts a stored
// message as pending a moment after the publish was acknowledged: pending 0 alone can
// hold just after a publish.)
func (r *rig) waitDrained(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var state string // the durable consumer's, at the last look
	testkit.WaitForDiag(t, 20*time.Second, "consumer drained", func() bool {
		info, err := r.topo.Consumer.Info(ctx)
		if err != nil {
			state = fmt.Sprintf("consumer info: %v", err)
			return false
		}
		state = fmt.Sprintf("pending %d, ack pending %d, redelivered %d, waiting pulls %d, delivered stream seq %d, ack floor stream seq %d",
			info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.Delivered.Stream, info.AckFloor.Stream)
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
		for _, subj := range info.Config.FilterSubjects {
			last, err := r.topo.Stream.GetLastMsgForSubject(ctx, subj)
			if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return false
			}
			if err == nil && last.Sequence > info.Delivered.Stream {
				state += fmt.Sprintf("; last message of %s: stream seq %d", subj, last.Sequence)
				return false
			}
		}
		return true
	}, func() string { return state })
}

func item(id, title, typ string, urgency float64, firstOpened string) ionix.ActionItem {
	return ionix.ActionItem{
		ID: id, Title: title, Type: typ, Urgency: urgency, FirstOpenedAt: firstOpened,
		Summary: "summary of " + id, Asset: "host-" + id + ".example.com", AssetType: "Domain",
	}
}

func importsOf(sim *emulator.Server, correlationID string) int {
	n := 0
	for _, req := range sim.Requests() {
		for k, v := range req.Fields {
			if strings.HasSuffix(k, "correlation_id") && v == correlationID {
				n++
			}
		}
	}
	return n
}

func incidentOf(t *testing.T, sim *emulator.Server, id string) emulator.Incident {
	t.Helper()
	var found []emulator.Incident
	for _, in := range sim.Incidents() {
		if in.CorrelationID == "ionix:"+id {
			found = append(found, in)
		}
	}
	if len(found) != 1 {
		t.Fatalf("action item %s has %d incidents, want 1", id, len(found))
	}
	return found[0]
}

func TestEndToEndIncidentsFiltersAndRedelivery(t *testing.T) {
	t.Parallel()
	filter := mapping.Filter{Categories: []string{"vulnerability", "PKI", "dns", "Cloud"}, UrgencyThreshold: 5}
	r := newRig(t, filter, emulator.Options{})

	sent := []ionix.ActionItem{
		item("vuln-1", "CVE-2024-3400 on vpn.example.net", "Vulnerability", 9.6, "2024-05-01T23:30:00-05:00"),
		item("pki-1", "Expired TLS certificate on mail.example.com", "PKI", 7.0, "2024-06-10T08:00:00Z"),
		item("dns-1", "Dangling CNAME on shop.example.com", "DNS", 5.0, "2024-06-11T10:15:30+02:00"),
		item("cloud-1", "Public S3 bucket backups.example.com", "Cloud", 8.99, "2024-06-12T00:00:00Z"),
	}
	lowUrgency := item("dns-low", "SPF record too permissive", "DNS", 4.99, "2024-06-12T00:00:00Z")
	otherCategory := item("mail-1", "DMARC policy missing", "Email Security", 9.9, "2024-06-12T00:00:00Z")

	// The first delivery of pki-1 loses its ack, so the server delivers it again.
	lossy := &lossyAcks{Consumer: r.topo.Consumer, dropFirstAckOf: "pki-1"}
	c := r.start(t, lossy, filter)
	r.publish(t, append(sent, lowUrgency, otherCategory)...)
	r.waitDrained(t)

	want := map[string]struct{ impact, urgency, priority, opened string }{
		"vuln-1":  {"1", "1", "1", "2024-05-02 04:30:00"},
		"pki-1":   {"2", "2", "3", "2024-06-10 08:00:00"},
		"dns-1":   {"2", "3", "4", "2024-06-11 08:15:30"},
		"cloud-1": {"2", "2", "3", "2024-06-12 00:00:00"},
	}
	for _, it := range sent {
		t.Run(it.ID, func(t *testing.T) {
			in := incidentOf(t, r.sim, it.ID)
			w := want[it.ID]
			if in.ShortDescription != it.Title || in.Category != it.Type {
				t.Errorf("short_description/category = %q/%q, want %q/%q", in.ShortDescription, in.Category, it.Title, it.Type)
			}
			if in.Impact != w.impact || in.Urgency != w.urgency || in.Priority != w.priority {
				t.Errorf("impact/urgency/priority = %s/%s/%s, want %s/%s/%s", in.Impact, in.Urgency, in.Priority, w.impact, w.urgency, w.priority)
			}
			if in.OpenedAt != w.opened {
				t.Errorf("opened_at = %q, want %q", in.OpenedAt, w.opened)
			}
			if !strings.Contains(in.Description, it.ID) || !strings.Contains(in.Description, it.Asset) {
				t.Errorf("description lacks the id or asset:\n%s", in.Description)
			}
			if n := importsOf(r.sim, "ionix:"+it.ID); n != 1 {
				t.Errorf("ServiceNow saw %d imports of %s, want 1", n, it.ID)
			}
		})
	}
	for _, it := range []ionix.ActionItem{lowUrgency, otherCategory} {
		if n := importsOf(r.sim, "ionix:"+it.ID); n != 0 {
			t.Errorf("filtered item %s was posted %d times", it.ID, n)
		}
	}
	if !lossy.dropped() {
		t.Fatal("the test did not drop an ack: no redelivery happened")
	}
	s := c.Stats()
	if s.Created != 4 || s.Duplicates != 1 || s.FilteredUrgency != 1 || s.DeadLettered != 0 {
		t.Errorf("stats = %+v, want 4 created, 1 duplicate, 1 filtered by urgency", s)
	}
	// The category filter is applied by the server: the other category never arrives.
	if s.Received != 6 {
		t.Errorf("received %d messages, want 6 (5 items + 1 redelivery)", s.Received)
	}
	if got := len(r.sim.Incidents()); got != 4 {
		t.Errorf("%d incidents, want 4", got)
	}
}

func TestInvalidItemIsDeadLetteredAndTheRestFlows(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{UrgencyThreshold: 1}, emulator.Options{})
	c := r.start(t, r.topo.Consumer, mapping.Filter{UrgencyThreshold: 1})
	ctx := context.Background()
	bad := []byte(`{"id":"bad-1","title":"Urgency out of range","type":"DNS","urgency":11}`)
	ack, err := r.js.Publish(ctx, ionix.Subject("", ionix.EventOpened, "DNS"), bad)
	if err != nil {
		t.Fatal(err)
	}
	good := item("good-1", "Open RDP on rdp.example.net", "Vulnerability", 8, "2024-01-01T00:00:00Z")
	r.publish(t, good)
	r.waitDrained(t)

	incidentOf(t, r.sim, "good-1")
	if s := c.Stats(); s.DeadLettered != 1 || s.Created != 1 {
		t.Errorf("stats = %+v, want 1 dead letter and 1 created", s)
	}
	dl, err := r.topo.DLQ.GetLastMsgForSubject(ctx, r.topo.Names.DLQSubjectPrefix+".>")
	if err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	if string(dl.Data) != string(bad) {
		t.Errorf("dead letter body = %s, want the original %s", dl.Data, bad)
	}
	reason := dl.Header.Get(topology.HeaderDLQReason)
	if !strings.Contains(reason, "urgency") {
		t.Errorf("reason %q does not name the urgency", reason)
	}
	if got := dl.Header.Get(topology.HeaderDLQSubject); got != "ionix.action_items.opened.dns" {
		t.Errorf("dead letter subject header = %q", got)
	}
	if got := dl.Header.Get(topology.HeaderDLQStreamSeq); got != "1" || ack.Sequence != 1 {
		t.Errorf("dead letter stream seq = %q, want %d", got, ack.Sequence)
	}
	if n := importsOf(r.sim, "ionix:bad-1"); n != 0 {
		t.Errorf("invalid item was posted %d times", n)
	}
}

// lossyAcks wraps the consumer so that the first acknowledgement of one action item
// is lost (turned into an immediate nak): the server then redelivers a message whose
// incident already exists.
type lossyAcks struct {
	jetstream.Consumer
	dropFirstAckOf string
	mu             sync.Mutex
	done           bool
}

func (l *lossyAcks) dropped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

func (l *lossyAcks) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	b, err := l.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	return wrapBatch(b, func(m jetstream.Msg) jetstream.Msg { return &lossyMsg{Msg: m, l: l} }), nil
}

// wrapBatch passes every message of b through wrap.
func wrapBatch(b jetstream.MessageBatch, wrap func(jetstream.Msg) jetstream.Msg) jetstream.MessageBatch {
	out := make(chan jetstream.Msg)
	go func() {
		defer close(out)
		for m := range b.Messages() {
			out <- wrap(m)
		}
	}()
	return &batch{msgs: out, inner: b}
}

type batch struct {
	msgs  chan jetstream.Msg
	inner jetstream.MessageBatch
}

func (b *batch) Messages() <-chan jetstream.Msg { return b.msgs }
func (b *batch) Error() error                   { return b.inner.Error() }

type lossyMsg struct {
	jetstream.Msg
	l *lossyAcks
}

func (m *lossyMsg) DoubleAck(ctx context.Context) error {
	if m.drop() {
		return m.Nak()
	}
	return m.Msg.DoubleAck(ctx)
}

func (m *lossyMsg) Ack() error {
	if m.drop() {
		return m.Nak()
	}
	return m.Msg.Ack()
}

// drop reports whether this ack is the one to lose.
func (m *lossyMsg) drop() bool {
	it, err := ionix.Decode(m.Data())
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	drop := err == nil && it.ID == m.l.dropFirstAckOf && !m.l.done
	if drop {
		m.l.done = true
	}
	return drop
}

// TestRepostWithoutLedgerEntryUpdatesNeverDuplicates covers the crash window between
// ServiceNow accepting an item and the ledger recording it (and replays): the same
// item arrives again as a first delivery, with no ledger entry to stop it. Coalesce
// on correlation_id must turn the post into an update — or, on an instance that
// answers "ignored" for a row that changes nothing, into no change — never a second
// incident and never a dead letter.
func TestRepostWithoutLedgerEntryUpdatesNeverDuplicates(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name            string
		ignoreUnchanged bool
	}{{"instance answers updated", false}, {"instance answers ignored", true}} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, mapping.Filter{UrgencyThreshold: 1}, emulator.Options{IgnoreUnchanged: tt.ignoreUnchanged})
			c := r.start(t, r.topo.Consumer, mapping.Filter{UrgencyThreshold: 1})
			it := item("crash-1", "Exposed Jenkins on ci.example.com", "Vulnerability", 9.1, "2024-03-03T03:03:03Z")
			r.publish(t, it)
			r.waitDrained(t)
			// The same body again without a de-duplication id, as a replay or a
			// publisher re-run after the duplicate window would store it.
			raw, _ := json.Marshal(it)
			msg := nats.NewMsg(ionix.Subject("", ionix.EventOpened, it.Type))
			msg.Header.Set(topology.HeaderEvent, string(ionix.EventOpened))
			msg.Data = raw
			if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 20*time.Second, "the re-post to arrive", func() bool { return c.Stats().Received == 2 })
			r.waitDrained(t)

			in := incidentOf(t, r.sim, "crash-1")
			if n := importsOf(r.sim, "ionix:crash-1"); n != 2 {
				t.Errorf("ServiceNow saw %d imports, want 2", n)
			}
			s := c.Stats()
			if s.DeadLettered != 0 || s.Created != 1 || s.Updated+s.Unchanged != 1 {
				t.Errorf("stats = %+v, want 1 created, 1 updated or unchanged, no dead letter", s)
			}
			if tt.ignoreUnchanged && (s.Unchanged != 1 || in.Updates != 0) {
				t.Errorf("unchanged = %d, incident updates = %d; want 1 and 0", s.Unchanged, in.Updates)
			}
		})
	}
}
