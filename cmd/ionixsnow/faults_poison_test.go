package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// TestPoisonMessagesWithProcesses puts messages on the stream that can never become
// incidents (not JSON; JSON without a type; an item ServiceNow's transform rejects)
// among good items: the good items all arrive, and the dead-letter stream holds
// exactly the three poison messages with their reason, subject and stream sequence.
func TestPoisonMessagesWithProcesses(t *testing.T) {
	const rejectedTitle = "Rejected by the onBefore transform script"
	r := newFaultRig(t, emulator.Options{OnBefore: func(row map[string]string) (string, string) {
		if row["u_name"] == rejectedTitle {
			return "error", "rejected by onBefore script"
		}
		return "", ""
	}}, "IONIXSNOW_CONSUMER_MAX_BACKOFF=1s", "IONIXSNOW_CONSUMER_ACK_WAIT=5s")
	good := faultItems("good", 20, 5)
	f := newFleet(t, r.env, 1)
	p := f.procs[0]
	pub := publisher.New(r.js, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const subject = "ionix.action_items.opened.vulnerability"
	type poison struct {
		name, why string
		seq       uint64
		subject   string
		data      []byte
	}
	rejected := faultItems("rejected", 1, 3)[0]
	rejected.Title, rejected.Type = rejectedTitle, "Vulnerability"
	rejectedRaw, _ := json.Marshal(rejected)
	poisons := []*poison{
		{name: "not JSON", why: "not valid JSON", subject: subject, data: []byte("{this is not json")},
		{name: "JSON without a type", why: "missing type", subject: subject,
			data: []byte(`{"id":"no-type-1","title":{"label":"An item without a type"},"urgency":{"urgency":8.2}}`)},
		{name: "rejected by ServiceNow", why: "rejected by onBefore script", subject: subject, data: rejectedRaw},
	}
	publishPoison := func(ps *poison) {
		t.Helper()
		msg := nats.NewMsg(ps.subject)
		msg.Header.Set(topology.HeaderEvent, string(ionix.EventOpened))
		msg.Data = ps.data
		ack, err := r.js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatalf("publish %s: %v", ps.name, err)
		}
		ps.seq = ack.Sequence
	}
	for i, it := range good {
		if err := publishItem(ctx, pub, it); err != nil {
			t.Fatal(err)
		}
		if i%7 == 3 {
			publishPoison(poisons[i/7])
		}
	}

	diag := func() string {
		return fmt.Sprintf("%d incidents, %d dead letters; %s\n%s", len(r.sim.Incidents()), r.deadLetterCount(),
			r.consumerState(), tailLines(p.logs.String(), 40))
	}
	testkit.WaitForDiag(t, 30*time.Second, "the good items to become incidents and the poison to be dead-lettered", func() bool {
		return len(r.sim.Incidents()) >= len(good) && r.deadLetterCount() >= len(poisons)
	}, diag)
	testkit.WaitForDiag(t, 10*time.Second, "the consumer to settle every message", r.consumerIdle, diag)
	f.stopAll()

	tl := tallyIncidents(r.sim.Incidents(), good)
	if tl.incidents != len(good) || tl.foreign != 0 || tl.duplicates() != 0 {
		t.Errorf("%d incidents of the %d good items (lost %s), %d other incidents, %d duplicated",
			tl.incidents, len(good), firstFew(tl.lost, 10), tl.foreign, tl.duplicates())
	}
	dls := r.deadLetters(t)
	if len(dls) != len(poisons) {
		t.Errorf("%d dead letters, want exactly %d", len(dls), len(poisons))
	}
	for _, ps := range poisons {
		i := slices.IndexFunc(dls, func(m *jetstream.RawStreamMsg) bool {
			return m.Header.Get(topology.HeaderDLQStreamSeq) == strconv.FormatUint(ps.seq, 10)
		})
		if i < 0 {
			t.Errorf("%s (stream sequence %d) is not in the dead-letter stream", ps.name, ps.seq)
			continue
		}
		m := dls[i]
		reason := m.Header.Get(topology.HeaderDLQReason)
		if reason == "" || !strings.Contains(reason, ps.why) {
			t.Errorf("%s: %s = %q, want a reason naming %q", ps.name, topology.HeaderDLQReason, reason, ps.why)
		}
		if got := m.Header.Get(topology.HeaderDLQSubject); got != ps.subject {
			t.Errorf("%s: %s = %q, want %q", ps.name, topology.HeaderDLQSubject, got, ps.subject)
		}
		if string(m.Data) != string(ps.data) {
			t.Errorf("%s: dead letter body %q, want the original %q", ps.name, m.Data, ps.data)
		}
		if got := m.Header.Get(topology.HeaderEvent); got != string(ionix.EventOpened) {
			t.Errorf("%s: original header %s = %q, want it kept", ps.name, topology.HeaderEvent, got)
		}
		t.Logf("%s: dead-lettered from %s seq %s: %s", ps.name, m.Header.Get(topology.HeaderDLQSubject),
			m.Header.Get(topology.HeaderDLQStreamSeq), reason)
	}
	if t.Failed() {
		t.Logf("process output:\n%s", tailLines(p.logs.String(), 60))
	}
}
