package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/replay"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// rig: a real JetStream with the topology, the ServiceNow emulator over HTTP.
type rig struct {
	js   jetstream.JetStream
	topo *topology.Topology
	sim  *emulator.Server
	snow *servicenow.Client
}

func newRig(t testing.TB) *rig {
	t.Helper()
	js := natstest.Connect(t, natstest.Start(t).URL())
	topo, err := topology.Ensure(context.Background(), js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sim := emulator.New(emulator.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	snow, err := servicenow.New(servicenow.Config{InstanceURL: srv.URL, ClientID: "ionix", ClientSecret: "ionix", Username: "ionix", Password: "ionix"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return &rig{js: js, topo: topo, sim: sim, snow: snow}
}

// slowAnswers makes ServiceNow answer after d, so that a replay can be stopped part way.
func (r *rig) slowAnswers(t *testing.T, d time.Duration) {
	t.Helper()
	cfg := r.sim.Config()
	cfg.Latency = emulator.Duration(d)
	if err := r.sim.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

func item(id, title string) ionix.ActionItem {
	return ionix.ActionItem{ID: id, Title: title, Type: "Cloud", Urgency: 8, FirstOpenedAt: "2026-10-01T08:00:00Z", Summary: "summary of " + id}
}

func (r *rig) publish(t *testing.T, items ...ionix.ActionItem) {
	t.Helper()
	pub := publisher.New(r.js, "")
	for _, it := range items {
		raw, _ := json.Marshal(it)
		if _, err := pub.Publish(context.Background(), raw, it, ionix.EventOpened); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *rig) deps() consumer.Deps {
	return consumer.Deps{
		Importer:    r.snow,
		Ledger:      ledger.New(r.topo.Tickets),
		JetStream:   r.js,
		DeadLetters: dlq.New(r.js, r.topo.Names),
		Stream:      r.topo.Stream,
		Log:         zerolog.Nop(),
	}
}

func opts() consumer.Options {
	return consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond}
}

// deliver runs the main consumer until every published item is an incident.
func (r *rig) deliver(t *testing.T, want int) {
	t.Helper()
	r.deliverWith(t, opts(), func() bool { return len(r.sim.Incidents()) == want })
}

// deliverWith runs the main consumer with o until done holds and nothing is pending.
func (r *rig) deliverWith(t *testing.T, o consumer.Options, done func() bool) {
	t.Helper()
	d := r.deps()
	d.Consumer = r.topo.Consumer
	c, err := consumer.New(d, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- c.Run(ctx) }()
	testkit.WaitFor(t, 20*time.Second, "the items delivered", func() bool {
		info, err := r.topo.Consumer.Info(context.Background())
		return done() && err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	cancel()
	<-stopped
}

func (r *rig) replay(t *testing.T, ctx context.Context, rg replay.Range, o replay.Options) (replay.Progress, error) {
	t.Helper()
	plan, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, rg)
	if err != nil {
		t.Fatal(err)
	}
	if o.Deps.Ledger == nil {
		o.Deps = r.deps()
	}
	if o.Consumer.Mapping.FieldPrefix == "" {
		o.Consumer = opts()
	}
	o.ProgressEvery = 100 * time.Millisecond
	return replay.Run(ctx, r.js, r.topo.Names.Stream, plan, o)
}

func items(n int) []ionix.ActionItem {
	out := make([]ionix.ActionItem, n)
	for i := range out {
		out[i] = item(fmt.Sprintf("rp-%02d", i), fmt.Sprintf("Finding %d", i))
	}
	return out
}

// TestReplayResendsEachOnce: a replay of delivered items re-sends each exactly once;
// coalesce makes every re-send an update, never a second incident; the replay's
// consumer is gone afterwards.
func TestReplayResendsEachOnce(t *testing.T) {
	r := newRig(t)
	r.publish(t, items(12)...)
	r.deliver(t, 12)

	p, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1}, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Finished || p.Done != 12 || p.Plan.Total != 12 {
		t.Errorf("progress %+v, want 12 of 12, finished", p)
	}
	if n := r.sim.ImportCount(); n != 24 {
		t.Errorf("%d imports, want 24 (12 delivered + 12 re-sent)", n)
	}
	for _, in := range r.sim.Incidents() {
		if in.Inserts != 1 || in.Updates != 1 {
			t.Errorf("%s: %d inserts, %d updates; want 1 and 1", in.Number, in.Inserts, in.Updates)
		}
	}
	if len(r.sim.Incidents()) != 12 {
		t.Errorf("%d incidents, want 12", len(r.sim.Incidents()))
	}
	if left := r.replayConsumers(t, p.Plan); len(left) > 0 {
		t.Errorf("the replay's consumers %v are still there after it finished", left)
	}
}

// TestReplayMissingOnly re-sends only the items whose incident is gone.
func TestReplayMissingOnly(t *testing.T) {
	r := newRig(t)
	r.publish(t, items(10)...)
	r.deliver(t, 10)
	var gone []string
	for _, in := range r.sim.Incidents()[:3] {
		if !r.sim.DeleteIncident(in.Number) {
			t.Fatal("emulator did not delete", in.Number)
		}
		gone = append(gone, in.CorrelationID)
	}
	before, seen := r.sim.ImportCount(), len(r.sim.Requests())
	o := replay.Options{Present: func(ctx context.Context, id string) (bool, error) {
		found, err := r.snow.FindIncidents(ctx, mapping.CorrelationID(id))
		return len(found) > 0, err
	}}
	p, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1, MissingOnly: true}, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.sim.ImportCount() - before; n != 3 {
		t.Errorf("%d imports, want 3 (the missing incidents)", n)
	}
	if p.Stats.Present != 7 {
		t.Errorf("stats %+v, want 7 present", p.Stats)
	}
	if n := len(r.sim.Incidents()); n != 10 {
		t.Errorf("%d incidents after the replay, want 10", n)
	}
	for _, req := range r.sim.Requests()[seen:] {
		if strings.Contains(req.Path, "/import/") && !contains(gone, req.Fields["u_correlation_id"]) {
			t.Errorf("re-sent %s, whose incident was there", req.Fields["u_correlation_id"])
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestReplaySkipsOlderVersions: a replay re-sends what the ledger holds, not the
// versions it replaced.
func TestReplaySkipsOlderVersions(t *testing.T) {
	r := newRig(t)
	v1 := item("ver-1", "Open port 22")
	v2 := item("ver-1", "Open port 22 (brute-forced)")
	r.publish(t, v1, v2)
	r.deliver(t, 1)
	p, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1}, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.Superseded != 1 || p.Stats.Updated+p.Stats.Unchanged != 1 {
		t.Errorf("stats %+v: want the older version skipped and the newer re-sent", p.Stats)
	}
	if in := r.sim.Incidents()[0]; in.ShortDescription != v2.Title {
		t.Errorf("incident says %q after the replay, want %q", in.ShortDescription, v2.Title)
	}
}

// TestReplayRespectsTheBudget: a replay spends the same global budget as consume:
// never more than the cap's sends in any window.
func TestReplayRespectsTheBudget(t *testing.T) {
	const limit, window, n = 5, time.Second, 14
	r := newRig(t)
	r.publish(t, items(n)...)
	r.deliver(t, n)
	budget, err := budget.NewKV(r.topo.Budget, limit, window, budget.WithMargin(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	o := replay.Options{Deps: r.deps(), Budget: budget}
	o.Deps.Budget = budget
	if _, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1}, o); err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, req := range r.sim.Requests() {
		if strings.Contains(req.Path, "/import/") && req.At.After(start) {
			at = append(at, req.At)
		}
	}
	if len(at) != n {
		t.Fatalf("%d imports during the replay, want %d", len(at), n)
	}
	for i := limit; i < len(at); i++ {
		if span := at[i].Sub(at[i-limit]); span < window {
			t.Errorf("%d imports within %s (from %s): the cap of %d per %s was exceeded", limit+1, span, at[i-limit].Format(time.StampMilli), limit, window)
		}
	}
}

// TestReplayResumes: a replay stopped part way resumes, under the same command, where
// it stopped: every item re-sent, none twice beyond the posts in flight at the stop.
func TestReplayResumes(t *testing.T) {
	r := newRig(t)
	r.publish(t, items(20)...)
	r.deliver(t, 20)
	r.slowAnswers(t, 30*time.Millisecond)
	before := r.sim.ImportCount()
	ctx, cancel := context.WithCancel(context.Background())
	o := replay.Options{Progress: func(p replay.Progress) {
		if p.Stats.Received >= 6 {
			cancel()
		}
	}}
	p, err := r.replay(t, ctx, replay.Range{FromSeq: 1}, o)
	if !errors.Is(err, replay.ErrStopped) || p.Finished {
		t.Fatalf("stopped replay: %v, %+v", err, p)
	}
	p, err = r.replay(t, context.Background(), replay.Range{FromSeq: 1}, replay.Options{})
	if err != nil || !p.Finished || !p.Resumed || p.Done != 20 {
		t.Fatalf("resumed replay: %v, %+v", err, p)
	}
	resent := r.sim.ImportCount() - before
	if resent < 20 || resent > 20+4 {
		t.Errorf("%d re-sends over the two runs, want 20 (+ at most the 4 in flight at the stop)", resent)
	}
	for _, in := range r.sim.Incidents() {
		if in.Updates < 1 || in.Inserts != 1 {
			t.Errorf("%s: %d inserts, %d updates", in.Number, in.Inserts, in.Updates)
		}
	}
}

// sentSince is the item ids and names of the imports ServiceNow saw after the first
// skip requests, in the order they came.
func (r *rig) sentSince(skip int) (ids, names []string) {
	var n int
	for _, q := range r.sim.Requests() {
		if !strings.HasPrefix(q.Path, "/api/now/import/") {
			continue
		}
		if n++; n > skip {
			ids = append(ids, strings.TrimPrefix(q.Fields["u_correlation_id"], "ionix:"))
			names = append(names, q.Fields["u_name"])
		}
	}
	return ids, names
}

// replayConsumers are the consumers of the plan's replay left on the stream.
func (r *rig) replayConsumers(t *testing.T, plan replay.Plan) []string {
	t.Helper()
	var left []string
	names := r.topo.Stream.ConsumerNames(context.Background())
	for name := range names.Name() {
		if strings.HasPrefix(name, plan.Durable) {
			left = append(left, name)
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return left
}

func urgent(id string, urgency float64) ionix.ActionItem {
	it := item(id, "Finding "+id)
	it.Urgency = urgency
	return it
}

// TestReplayGoesByUrgency: a replay re-sends High items first, then Medium, then
// Low (SPEC §10), each band in stream order; an item's versions go together in the
// pass of its most urgent one, so an older version never follows a newer.
func TestReplayGoesByUrgency(t *testing.T) {
	r := newRig(t)
	climbV1, climbV2 := urgent("climb", 4), urgent("climb", 9.6) // a Low item that became High
	climbV2.Title = "climb v2"
	r.publish(t, urgent("low-1", 3), urgent("high-1", 9.5), urgent("med-1", 7.5), climbV1,
		urgent("low-2", 5), urgent("med-2", 8), urgent("high-2", 9), climbV2, urgent("low-3", 1))
	r.deliver(t, 8)
	before := r.sim.ImportCount()

	plan, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, replay.Range{FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := [3]uint64{plan.Order.Count(replay.PassHigh), plan.Order.Count(replay.PassMedium), plan.Order.Count(replay.PassLow)}; got != [3]uint64{4, 2, 3} {
		t.Errorf("plan by band %v, want [4 2 3] (the climbing item's two versions with High)", got)
	}
	var passes []replay.Pass
	o := replay.Options{Progress: func(p replay.Progress) {
		if len(passes) == 0 || passes[len(passes)-1] != p.Pass {
			passes = append(passes, p.Pass)
		}
	}}
	o.Consumer = opts()
	o.Consumer.Concurrency = 1 // one post at a time: they arrive in the order they start
	p, err := r.replay(t, context.Background(), replay.Range{FromSeq: 1}, o)
	if err != nil || !p.Finished || p.Done != 9 {
		t.Fatalf("replay: %v, %+v", err, p)
	}
	ids, names := r.sentSince(before)
	// The climbing item's first version is older than the one the ledger holds: not
	// re-sent (TestReplaySkipsOlderVersions); its second goes in the High pass.
	want := []string{"high-1", "high-2", "climb", "med-1", "med-2", "low-1", "low-2", "low-3"}
	if !slices.Equal(ids, want) {
		t.Errorf("re-sent in the order %v, want %v", ids, want)
	}
	if len(names) == len(want) && names[2] != "climb v2" {
		t.Errorf("the climbing item was re-sent as %q, want its last version", names[2])
	}
	if !slices.Equal(passes, []replay.Pass{replay.PassHigh, replay.PassMedium, replay.PassLow}) {
		t.Errorf("progress went through the passes %v, want high, medium, low", passes)
	}
	if left := r.replayConsumers(t, p.Plan); len(left) > 0 {
		t.Errorf("the replay's consumers %v are still there after it finished", left)
	}
}

// TestReplayResumesInItsPass: a replay stopped in its Medium pass resumes there: the
// High items are not re-sent again, the rest each once (beyond the posts in flight
// at the stop), the order by band kept.
func TestReplayResumesInItsPass(t *testing.T) {
	r := newRig(t)
	var all []ionix.ActionItem
	for i := range 4 {
		all = append(all, urgent(fmt.Sprintf("low-%d", i), 2), urgent(fmt.Sprintf("high-%d", i), 9.2))
	}
	for i := range 8 {
		all = append(all, urgent(fmt.Sprintf("med-%d", i), 7))
	}
	r.publish(t, all...)
	r.deliver(t, 16)
	r.slowAnswers(t, 30*time.Millisecond)
	before := r.sim.ImportCount()
	ctx, cancel := context.WithCancel(context.Background())
	var midway []uint64 // Done as the Medium pass went
	o := replay.Options{Progress: func(p replay.Progress) {
		if p.Pass == replay.PassMedium {
			midway = append(midway, p.Done)
		}
		if p.Pass == replay.PassMedium && p.Stats.Created+p.Stats.Updated >= 6 {
			cancel()
		}
	}}
	o.Consumer = opts()
	o.Consumer.Concurrency = 1
	p, err := r.replay(t, ctx, replay.Range{FromSeq: 1}, o)
	if !errors.Is(err, replay.ErrStopped) || p.Pass != replay.PassMedium {
		t.Fatalf("stopped replay: %v, in pass %v", err, p.Pass)
	}
	if left := r.replayConsumers(t, p.Plan); !slices.Equal(left, []string{p.Plan.Durable + "_" + replay.PassMedium.String()}) {
		t.Errorf("consumers left by the stop: %v, want the Medium pass's only", left)
	}
	if !slices.ContainsFunc(midway, func(done uint64) bool { return done > 4 && done < 12 }) {
		t.Errorf("done as the Medium pass went: %v, want some past the 4 High items and short of the 8 Medium", midway)
	}
	// As if the process had died between making the Medium pass's consumer and
	// deleting the finished High pass's: the resume goes on with Medium.
	if _, err := r.js.CreateConsumer(context.Background(), r.topo.Names.Stream, jetstream.ConsumerConfig{
		Durable: p.Plan.Durable + "_" + replay.PassHigh.String(), DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	p, err = r.replay(t, context.Background(), replay.Range{FromSeq: 1}, replay.Options{})
	if err != nil || !p.Finished || !p.Resumed || p.Done != 16 {
		t.Fatalf("resumed replay: %v, %+v", err, p)
	}
	ids, _ := r.sentSince(before)
	count := map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	for _, it := range all {
		if n := count[it.ID]; n < 1 || n > 1 && !strings.HasPrefix(it.ID, "med-") {
			t.Errorf("%s re-sent %d times over the two runs", it.ID, n)
		}
	}
	if len(ids) > 16+1 {
		t.Errorf("%d re-sends over the two runs, want 16 (+ the one in flight at the stop)", len(ids))
	}
	first := func(prefix string) int {
		return slices.IndexFunc(ids, func(id string) bool { return strings.HasPrefix(id, prefix) })
	}
	last := func(prefix string) (at int) {
		for i, id := range ids {
			if strings.HasPrefix(id, prefix) {
				at = i
			}
		}
		return at
	}
	if last("high-") > first("med-") || last("med-") > first("low-") {
		t.Errorf("the bands mixed over the stop and the resume: %v", ids)
	}
	if left := r.replayConsumers(t, p.Plan); len(left) > 0 {
		t.Errorf("the replay's consumers %v are still there after it finished", left)
	}
}

// TestReplayBegunInStreamOrderResumesSo: a replay stopped by a version that knew no
// passes (its one consumer named after the range) resumes in stream order, to the
// end of the range it planned.
func TestReplayBegunInStreamOrderResumesSo(t *testing.T) {
	r := newRig(t)
	r.publish(t, urgent("low-1", 2), urgent("high-1", 9.5), urgent("low-2", 2))
	r.deliver(t, 3)
	ctx := context.Background()
	plan, err := replay.Resolve(ctx, r.js, r.topo.Stream, replay.Range{FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.js.CreateConsumer(ctx, r.topo.Names.Stream, jetstream.ConsumerConfig{
		Durable: plan.Durable, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 1,
		AckPolicy: jetstream.AckExplicitPolicy,
		Metadata: map[string]string{"ionixsnow_replay_last_seq": "3", "ionixsnow_replay_total": "3",
			"ionixsnow_replay_started_at": time.Now().UTC().Format(time.RFC3339Nano)},
	}); err != nil {
		t.Fatal(err)
	}
	r.publish(t, urgent("after", 9.9)) // after the planned range
	before := r.sim.ImportCount()
	o := replay.Options{Consumer: opts()}
	o.Consumer.Concurrency = 1
	p, err := r.replay(t, ctx, replay.Range{FromSeq: 1}, o)
	if err != nil || !p.Finished || !p.Resumed || p.Done != 3 || !p.Plan.StreamOrder {
		t.Fatalf("resumed replay: %v, %+v", err, p)
	}
	if ids, _ := r.sentSince(before); !slices.Equal(ids, []string{"low-1", "high-1", "low-2"}) {
		t.Errorf("re-sent %v, want the planned range in stream order", ids)
	}
	if left := r.replayConsumers(t, p.Plan); len(left) > 0 {
		t.Errorf("the replay's consumers %v are still there after it finished", left)
	}
}

// TestReplayPassOutlastsServiceNowErrors: while ServiceNow answers 503 the pass's
// items are kept for another attempt, and messages after the range (the stream grew
// since the plan) are acknowledged meanwhile: the pass still ends only once its own
// items were re-sent.
func TestReplayPassOutlastsServiceNowErrors(t *testing.T) {
	r := newRig(t)
	var high []ionix.ActionItem
	for i := range 5 {
		high = append(high, urgent(fmt.Sprintf("high-%d", i), 9.5))
	}
	r.publish(t, high...)
	r.deliver(t, 5)
	plan, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, replay.Range{FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		r.publish(t, urgent(fmt.Sprintf("after-%d", i), 2)) // after the planned range
	}
	if err := r.sim.SetConfig(emulator.Config{Outage: emulator.Outage{Mode: emulator.Outage503, For: emulator.Duration(2 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	before := r.sim.ImportCount()
	o := replay.Options{Deps: r.deps(), Consumer: opts(), ProgressEvery: 50 * time.Millisecond}
	o.Consumer.MaxBackoff = 500 * time.Millisecond
	p, err := replay.Run(context.Background(), r.js, r.topo.Names.Stream, plan, o)
	if err != nil || !p.Finished || p.Done != 5 {
		t.Fatalf("replay: %v, %+v", err, p)
	}
	accepted := map[string]bool{}
	for _, q := range r.sim.Requests()[before:] {
		if q.Status/100 == 2 && q.ImportStatus != "" {
			accepted[strings.TrimPrefix(q.Fields["u_correlation_id"], "ionix:")] = true
		}
	}
	for _, it := range high {
		if !accepted[it.ID] {
			t.Errorf("%s not re-sent, yet the replay finished", it.ID)
		}
	}
}

// TestReplayPassSkipsWithoutTheBudget: a pass goes through the other bands'
// messages without asking the budget for them, so a High item behind a range of Low
// ones is re-sent at once even while consume drains a backlog at the cap (scaled
// here: 1,000 per 100 s, paced, a burst of 50 — one send every 100 ms, all of them
// wanted).
func TestReplayPassSkipsWithoutTheBudget(t *testing.T) {
	r := newRig(t)
	in := []ionix.ActionItem{urgent("high-first", 9.5)} // the High pass starts here
	for i := range 300 {
		in = append(in, urgent(fmt.Sprintf("low-%03d", i), 2))
	}
	in = append(in, urgent("high", 9.5))
	r.publish(t, in...)
	r.deliver(t, len(in))
	b, err := budget.NewKV(r.topo.Budget, 1000, 100*time.Second, budget.WithPacing(50))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	draining := make(chan struct{})
	go func() { // consume, draining a backlog at the cap
		defer close(draining)
		for ctx.Err() == nil {
			_, _ = b.AcquireGrant(ctx, 1)
		}
	}()
	testkit.WaitFor(t, 10*time.Second, "the burst spent", func() bool {
		st, err := b.State(ctx)
		return err == nil && st.Used >= 50
	})
	plan, err := replay.Resolve(ctx, r.js, r.topo.Stream, replay.Range{FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	o := replay.Options{Deps: r.deps(), Consumer: opts(), Budget: b}
	o.Deps.Budget = b
	o.Consumer.Concurrency = 1
	before := r.sim.ImportCount()
	start := time.Now()
	replayed := make(chan struct{})
	go func() {
		defer close(replayed)
		_, _ = replay.Run(ctx, r.js, r.topo.Names.Stream, plan, o)
	}()
	testkit.WaitFor(t, 5*time.Second, "the High item re-sent past 300 Low ones", func() bool {
		ids, _ := r.sentSince(before)
		return slices.Contains(ids, "high")
	})
	t.Logf("the High item re-sent %v after the replay began", time.Since(start).Round(time.Millisecond))
	cancel()
	<-replayed
	<-draining
}

// TestReplayOneMessageBandOutlastsErrors: a band of one message (its first is its
// last) amid the range, ServiceNow failing for a while: the High pass ends only once
// its item was re-sent, and before anything of the Low pass.
func TestReplayOneMessageBandOutlastsErrors(t *testing.T) {
	r := newRig(t)
	r.publish(t, urgent("low-a", 2), urgent("low-b", 2), urgent("high", 9.5), urgent("low-c", 2))
	r.deliver(t, 4)
	plan, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, replay.Range{FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.sim.SetConfig(emulator.Config{Outage: emulator.Outage{Mode: emulator.Outage503, For: emulator.Duration(1500 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	before := len(r.sim.Requests())
	o := replay.Options{Deps: r.deps(), Consumer: opts(), ProgressEvery: 20 * time.Millisecond}
	o.Consumer.MaxBackoff = 300 * time.Millisecond
	if p, err := replay.Run(context.Background(), r.js, r.topo.Names.Stream, plan, o); err != nil || !p.Finished {
		t.Fatalf("replay: %v, %+v", err, p)
	}
	var order []string
	for _, q := range r.sim.Requests()[before:] {
		if q.Status/100 == 2 && q.ImportStatus != "" {
			order = append(order, strings.TrimPrefix(q.Fields["u_correlation_id"], "ionix:"))
		}
	}
	if len(order) != 4 || order[0] != "high" {
		t.Errorf("accepted in the order %v, want the High item first, then the 3 Low", order)
	}
}

// TestReplayPassWhoseLastMessageWasDeleted: the band's last message is deleted from
// the stream after the plan and nothing follows it: its pass still ends.
func TestReplayPassWhoseLastMessageWasDeleted(t *testing.T) {
	r := newRig(t)
	r.publish(t, urgent("low-1", 2), urgent("high-1", 9.5), urgent("low-2", 2), urgent("high-2", 9.5))
	r.deliver(t, 4)
	plan, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, replay.Range{FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.topo.Stream.DeleteMsg(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // the deadline
	defer cancel()
	o := replay.Options{Deps: r.deps(), Consumer: opts(), ProgressEvery: 50 * time.Millisecond}
	p, err := replay.Run(ctx, r.js, r.topo.Names.Stream, plan, o)
	if err != nil || !p.Finished {
		t.Fatalf("replay: %v (pass %v, %d of %d)", err, p.Pass, p.Done, p.Plan.Total)
	}
	if ids, _ := r.sentSince(0); !slices.Contains(ids[4:], "low-2") {
		t.Errorf("re-sent %v: the Low pass did not run", ids[4:])
	}
}
