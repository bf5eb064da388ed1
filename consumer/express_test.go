package consumer_test

// The express lane's hard cases (found in review): replicas racing for one item,
// a send ahead that fails, requeued copies, a Medium backlog on three replicas.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// laneRig is a stream, an emulator and what a test publishes.
type laneRig struct {
	t   testing.TB
	url string
	sim *emulator.Server
	hs  *httptest.Server
	js  jetstream.JetStream
	pub *publisher.Publisher
}

func newLaneRig(t testing.TB) *laneRig {
	srv := natstest.Start(t)
	sim := emulator.New(emulator.Options{})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	js := natstest.Connect(t, srv.URL())
	if _, err := topology.Ensure(context.Background(), js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	return &laneRig{t: t, url: srv.URL(), sim: sim, hs: hs, js: js, pub: publisher.New(js, "")}
}

func (e *laneRig) publish(id string, urgency float64) {
	e.t.Helper()
	e.publishTitled(id, "Finding "+id, urgency)
}

// publishTitled publishes the opened event of item id with its title and urgency.
func (e *laneRig) publishTitled(id, title string, urgency float64) {
	e.t.Helper()
	it := ionix.ActionItem{ID: id, Title: title, Type: "Vulnerability", Urgency: urgency,
		FirstOpenedAt: "2026-01-01T00:00:00Z", Asset: id + ".example.com"}
	raw, _ := json.Marshal(it)
	if _, err := e.pub.Publish(context.Background(), raw, it, ionix.EventOpened); err != nil {
		e.t.Fatal(err)
	}
}

// imports is how many import requests reached ServiceNow, for id ("": all).
func (e *laneRig) imports(id string) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if strings.HasPrefix(r.Path, "/api/now/import/") && (id == "" || correlationOf(r) == id) {
			n++
		}
	}
	return n
}

// settled reports whether the durable consumer has nothing pending or in flight.
func (e *laneRig) settled() bool {
	c, err := e.js.Consumer(context.Background(), topology.DefaultStream, topology.DefaultConsumer)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func (e *laneRig) replica(limit int, window time.Duration, wrap func(consumer.Importer) consumer.Importer, opts ...budget.Option) {
	e.t.Helper()
	expressReplicaWith(e.t, e.url, e.hs.URL, limit, window, wrap, opts...)
}

// slowImporter takes delay per import (ServiceNow's latency), and fails the first
// import of failFirst.
type slowImporter struct {
	consumer.Importer
	delay     time.Duration
	failFirst string
	failed    atomic.Bool
}

func (s *slowImporter) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	if s.failFirst != "" && rec["u_correlation_id"] == "ionix:"+s.failFirst && s.failed.CompareAndSwap(false, true) {
		return servicenow.Result{}, &servicenow.Error{Class: servicenow.ClassTransient, StatusCode: 503, Message: "injected", Op: "import"}
	}
	time.Sleep(s.delay) // ServiceNow's own latency
	return s.Importer.Import(ctx, rec)
}

func slow(delay time.Duration) func(consumer.Importer) consumer.Importer {
	return func(imp consumer.Importer) consumer.Importer { return &slowImporter{Importer: imp, delay: delay} }
}

// TestOneReplicaSendsEachItemAhead: three replicas' lanes see the same High item;
// their claims let one post it, whether the window has room or only the reserve.
func TestOneReplicaSendsEachItemAhead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		reserve int
		before  int // imports before the High item is published
	}{{"the window has room", 1, 5}, {"the ordinary slots spent", 3, 17}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLaneRig(t)
			for i := range 40 {
				e.publish(fmt.Sprintf("low-%03d", i), 3)
			}
			for range 3 {
				e.replica(20, 2*time.Second, slow(100*time.Millisecond), budget.WithReserve(tc.reserve))
			}
			testkit.WaitFor(t, 20*time.Second, "the backlog held back", func() bool { return e.imports("") >= tc.before })
			e.publish("high-1", 9.5)
			testkit.WaitForDiag(t, 60*time.Second, "everything sent", func() bool { return len(e.sim.Incidents()) == 41 && e.settled() },
				func() string { return fmt.Sprintf("%d incidents", len(e.sim.Incidents())) })
			if n := e.imports("high-1"); n != 1 {
				t.Errorf("high-1 was imported %d times, want 1 (each costs a send of the cap)", n)
			}
		})
	}
}

// TestASendAheadThatFailsKeepsItsPlace: the lane's post of a High item fails once
// (ServiceNow 503): the item goes ahead again after a pause, not back behind the
// backlog.
func TestASendAheadThatFailsKeepsItsPlace(t *testing.T) {
	t.Parallel()
	e := newLaneRig(t)
	for i := range 60 {
		e.publish(fmt.Sprintf("low-%03d", i), 3)
	}
	e.replica(20, 3*time.Second, func(imp consumer.Importer) consumer.Importer {
		return &slowImporter{Importer: imp, failFirst: "high-1"}
	})
	testkit.WaitFor(t, 20*time.Second, "the backlog to spend the window", func() bool { return e.imports("") >= 19 })
	published := time.Now()
	e.publish("high-1", 9.5)
	testkit.WaitFor(t, 60*time.Second, "the High item imported", func() bool { return len(e.sim.Incidents()) > 0 && hasIncident(e.sim, "high-1") })
	var highAt time.Time
	lows := 0
	for _, r := range e.sim.Requests() {
		if !strings.HasPrefix(r.Path, "/api/now/import/") || r.Status != 200 && r.Status != 201 {
			continue
		}
		if correlationOf(r) == "high-1" {
			highAt = r.At
			break
		}
		if r.At.After(published) {
			lows++
		}
	}
	t.Logf("High imported %s after its publish, %d Low imports in between", highAt.Sub(published).Round(time.Millisecond), lows)
	if highAt.Sub(published) > 5*time.Second || lows > 4 {
		t.Errorf("after one failed post ahead the High item waited %s behind %d Low items", highAt.Sub(published).Round(time.Millisecond), lows)
	}
}

func hasIncident(sim *emulator.Server, id string) bool {
	for _, in := range sim.Incidents() {
		if in.CorrelationID == "ionix:"+id {
			return true
		}
	}
	return false
}

// TestARequeuedCopyIsNotSentAhead: a copy (requeued) is posted whatever the ledger
// says, so only its delivery posts it: the item is imported twice (its post, the
// copy's), not three times.
func TestARequeuedCopyIsNotSentAhead(t *testing.T) {
	t.Parallel()
	e := newLaneRig(t)
	for i := range 30 {
		e.publish(fmt.Sprintf("low-%03d", i), 3)
	}
	e.replica(20, 3*time.Second, nil)
	testkit.WaitFor(t, 20*time.Second, "the backlog to spend the window", func() bool { return e.imports("") >= 19 })
	e.publish("high-1", 9.5)
	testkit.WaitFor(t, 10*time.Second, "the High item imported", func() bool { return e.imports("high-1") > 0 })
	s, err := e.js.Stream(context.Background(), topology.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(context.Background(), "ionix.action_items.opened.vulnerability")
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(raw.Subject)
	m.Data = raw.Data
	m.Header.Set(topology.HeaderEvent, raw.Header.Get(topology.HeaderEvent))
	m.Header.Set(topology.HeaderRequeuedFrom, fmt.Sprint(raw.Sequence))
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 60*time.Second, "everything settled", func() bool { return len(e.sim.Incidents()) == 31 && e.settled() })
	if n := e.imports("high-1"); n != 2 {
		t.Errorf("high-1 imported %d times, want 2 (its post, its copy's)", n)
	}
}

// TestAMediumBacklogOnThreeReplicas: every item is imported once, paced or not.
func TestAMediumBacklogOnThreeReplicas(t *testing.T) {
	t.Parallel()
	for _, paced := range []bool{false, true} {
		t.Run(fmt.Sprintf("paced=%v", paced), func(t *testing.T) {
			t.Parallel()
			e := newLaneRig(t)
			const n = 80
			for i := range n {
				e.publish(fmt.Sprintf("med-%03d", i), 8)
			}
			opts := []budget.Option{budget.WithPacing(40)} // as good as burst: the window alone
			if paced {
				opts = []budget.Option{budget.WithPacing(1)}
			}
			for range 3 {
				e.replica(40, 2*time.Second, slow(100*time.Millisecond), opts...)
			}
			testkit.WaitForDiag(t, 90*time.Second, "every item", func() bool { return len(e.sim.Incidents()) == n && e.settled() },
				func() string { return fmt.Sprintf("%d of %d", len(e.sim.Incidents()), n) })
			if total := e.imports(""); total != n {
				t.Errorf("%d import requests for %d items", total, n)
			}
		})
	}
}

// TestAnOutageWhileTheLaneIsOnEndsInSendingAgain: ServiceNow down while the lane
// sends a Medium backlog ahead: the lane sends nothing while sending is paused (the
// pull loop probes), and once ServiceNow is back every item is sent, once.
func TestAnOutageWhileTheLaneIsOnEndsInSendingAgain(t *testing.T) {
	t.Parallel()
	e := newLaneRig(t)
	const n = 40
	for i := range n {
		e.publish(fmt.Sprintf("med-%03d", i), 8)
	}
	e.replica(40, 2*time.Second, nil)
	testkit.WaitFor(t, 20*time.Second, "the backlog held back", func() bool { return len(e.sim.Incidents()) >= 10 })
	if err := e.sim.SetConfig(emulator.Config{Outage: emulator.Outage{Mode: emulator.Outage503, For: emulator.Duration(3 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitForDiag(t, 60*time.Second, "every item sent after the outage", func() bool { return len(e.sim.Incidents()) == n && e.settled() },
		func() string { return fmt.Sprintf("%d of %d incidents", len(e.sim.Incidents()), n) })
	if dup := len(e.sim.Incidents()) - n; dup != 0 {
		t.Errorf("%d incidents too many", dup)
	}
}

// TestALeftOverClaimDoesNotHoldItsItemBack: a claim a crashed replica left (no
// owner, no time) is taken over: its item is sent ahead like the others.
func TestALeftOverClaimDoesNotHoldItsItemBack(t *testing.T) {
	t.Parallel()
	e := newLaneRig(t)
	for i := range 40 {
		e.publish(fmt.Sprintf("low-%03d", i), 3)
	}
	e.publish("med-left", 8) // sequence 41
	kv, err := e.js.KeyValue(context.Background(), topology.DefaultNames().BudgetBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(context.Background(), "ahead.window.41", nil); err != nil {
		t.Fatal(err)
	}
	e.replica(20, 3*time.Second, nil)
	testkit.WaitFor(t, 20*time.Second, "the backlog held back", func() bool { return e.imports("") >= 19 })
	// Sent ahead of the Low items still waiting, not after them.
	testkit.WaitForDiag(t, 10*time.Second, "the Medium item sent ahead", func() bool { return e.imports("med-left") == 1 },
		func() string { return fmt.Sprintf("%d imports", e.imports("")) })
	if left := 41 - len(e.sim.Incidents()); left < 10 {
		t.Errorf("the Medium item went after all but %d Low items", left)
	}
}

// TestTheLaneAfterAStreamRecreation: the stream is deleted and created again while a
// replica runs, so its sequences start at 1 anew: a High item behind a backlog on the
// new stream still goes ahead of it (the lane forgets the old stream's sequences).
func TestTheLaneAfterAStreamRecreation(t *testing.T) {
	t.Parallel()
	e := newLaneRig(t)
	for i := range 60 {
		e.publish(fmt.Sprintf("old-%03d", i), 3)
	}
	e.replica(20, 2*time.Second, nil)
	testkit.WaitFor(t, 30*time.Second, "the old stream drained", func() bool { return len(e.sim.Incidents()) == 60 && e.settled() })
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, topology.DefaultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Ensure(ctx, e.js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		e.publish(fmt.Sprintf("new-%03d", i), 3)
	}
	testkit.WaitFor(t, 30*time.Second, "the new backlog held back", func() bool { return e.imports("") >= 60+19 })
	e.publish("high-1", 9.5)
	testkit.WaitForDiag(t, 5*time.Second, "the High item sent", func() bool { return e.imports("high-1") == 1 },
		func() string { return fmt.Sprintf("%d imports", e.imports("")) })
	if left := 40 - (e.imports("") - 60 - 1); left < 10 {
		t.Errorf("the High item went with only %d of the new stream's 40 Low items left: it did not go ahead of them", left)
	}
}

// TestAReplicaWhoseLaneIsOffLeavesAClaimedItem: another replica's lane holds the
// claim on a Medium item; a replica whose own lane is off (no backlog, and its
// watch started after the claim was made) delivers the item: it posts nothing
// while the claim is held, and posts it once when the claim is gone. (Its delivery
// used to post at once, while the other lane posted the same message.)
func TestAReplicaWhoseLaneIsOffLeavesAClaimedItem(t *testing.T) {
	t.Parallel()
	e := newLaneRig(t)
	e.publish("med-1", 8) // sequence 1
	kv, err := e.js.KeyValue(context.Background(), topology.DefaultNames().BudgetBucket)
	if err != nil {
		t.Fatal(err)
	}
	claim := fmt.Sprintf("lane other-replica %d", time.Now().UnixMilli())
	if _, err := kv.Create(context.Background(), "ahead.window.1", []byte(claim)); err != nil {
		t.Fatal(err)
	}
	// Its lane stays off (nothing held back yet), but its grant leaves no room
	// (paced, a burst of 1): the cap binds, another replica's lane may be on.
	e.replica(100, 2*time.Second, nil)
	dc, err := e.js.Consumer(context.Background(), topology.DefaultStream, topology.DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the item delivered twice (or posted)", func() bool {
		info, err := dc.Info(context.Background())
		return err == nil && info.Delivered.Consumer >= 2 || e.imports("med-1") > 0
	})
	if n := e.imports("med-1"); n != 0 {
		t.Fatalf("med-1 imported %d times while another replica's lane held its claim", n)
	}
	if err := kv.Delete(context.Background(), "ahead.window.1"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the item sent", func() bool { return e.imports("med-1") > 0 && e.settled() })
	if n := e.imports("med-1"); n != 1 {
		t.Errorf("med-1 imported %d times, want 1", n)
	}
}
