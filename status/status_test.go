package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/status"
	"github.com/ionix/ionixsnow/topology"
)

const (
	window = time.Hour
	hold   = window + window/100 // the consumer's default margin
	slice  = window / 1000       // the budget ledger's resolution: a grant holds its slot up to one slice longer
)

func publishItems(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf(`{"id":"item-%d","title":{"label":"Expired certificate on host-%d"},"type":"PKI","urgency":{"urgency":7.5}}`, i, i)
		if _, err := js.Publish(context.Background(), "ionix.action_items.opened.pki", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
}

func fetch(t *testing.T, c jetstream.Consumer, n int) []jetstream.Msg {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	if err := batch.Error(); err != nil {
		t.Fatal(err)
	}
	if len(out) != n {
		t.Fatalf("fetched %d messages, want %d", len(out), n)
	}
	return out
}

// confirm sends an acknowledgement (-NAK, +TERM) and waits for the server to
// confirm it has applied it, as DoubleAck does for +ACK.
func confirm(t *testing.T, js jetstream.JetStream, m jetstream.Msg, ack string) {
	t.Helper()
	if _, err := js.Conn().Request(m.Reply(), []byte(ack), 5*time.Second); err != nil {
		t.Fatalf("%s: %v", ack, err)
	}
}

// traffic builds the state of a consumer at work: 10 messages published; 4
// fetched, of which one acked, one nak'd and fetched again (redelivered), one
// dead-lettered and terminated, one left in flight; grants taken from a budget of
// the given limit at now. It returns the budget as the consumer would read it.
func traffic(t *testing.T, js jetstream.JetStream, limit, grants int, now time.Time) budget.State {
	t.Helper()
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	publishItems(t, js, 10)
	msgs := fetch(t, topo.Consumer, 4)
	confirm(t, js, msgs[1], "-NAK")
	again := fetch(t, topo.Consumer, 1)
	if md, err := again[0].Metadata(); err != nil || md.NumDelivered != 2 || md.Sequence.Stream != 2 {
		t.Fatalf("refetched %+v (%v), want stream sequence 2 delivered twice", md, err)
	}
	md, err := msgs[2].Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.New(js, topo.Names).Put(ctx, msgs[2], md.Sequence.Stream, "urgency 42 outside 0-10"); err != nil {
		t.Fatal(err)
	}
	confirm(t, js, msgs[2], "+TERM")
	if err := msgs[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := budget.NewKV(topo.Budget, limit, window, budget.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Acquire(ctx, grants); err != nil || got != grants {
		t.Fatalf("acquired %d (%v), want %d", got, err, grants)
	}
	st, err := b.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatusCollect(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	tests := []struct {
		name    string
		limit   int
		setup   func(t *testing.T, js jetstream.JetStream, limit int) budget.State
		wantErr error
		check   func(t *testing.T, r status.Report, budget budget.State)
	}{
		{
			name: "nothing exists yet", limit: 1000,
			setup:   func(*testing.T, jetstream.JetStream, int) budget.State { return budget.State{} },
			wantErr: status.ErrNoStream,
		},
		{
			name: "only the stream, as after a first publish", limit: 1000,
			setup: func(t *testing.T, js jetstream.JetStream, _ int) budget.State {
				if _, err := topology.EnsureStream(context.Background(), js, topology.Options{}); err != nil {
					t.Fatal(err)
				}
				publishItems(t, js, 3)
				return budget.State{}
			},
			check: func(t *testing.T, r status.Report, _ budget.State) {
				if r.Stream.Messages != 3 || r.Stream.FirstSeq != 1 || r.Stream.LastSeq != 3 {
					t.Errorf("stream = %+v, want 3 messages, seq 1-3", r.Stream)
				}
				if r.Consumer.Exists || r.Consumer.Pending != 0 || r.Consumer.Name != "servicenow" {
					t.Errorf("consumer = %+v, want servicenow, not existing", r.Consumer)
				}
				if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "consumer servicenow does not exist yet") {
					t.Errorf("problems = %q, want the missing consumer", r.Problems)
				}
				if r.Budget.Used != 0 || r.Budget.Remaining != 1000 || !r.Budget.NextFreeAt.Equal(now) || !r.Budget.Readable {
					t.Errorf("budget = %+v, want empty, next free now", r.Budget)
				}
				if r.DeadLetters != 0 || r.Drain.Backlog != 3 || r.DrainETASeconds != 0 || r.Drain.LimitedByCap {
					t.Errorf("dead letters %d, drain %+v; want 0 and the 3 messages sent at once", r.DeadLetters, r.Drain)
				}
			},
		},
		{
			name: "a consumer at work, under the cap", limit: 20,
			setup: func(t *testing.T, js jetstream.JetStream, limit int) budget.State {
				return traffic(t, js, limit, 5, now)
			},
			check: func(t *testing.T, r status.Report, budget budget.State) {
				wantConsumer(t, r)
				if r.Budget.Used != 5 || r.Budget.Limit != 20 || r.Budget.Remaining != 15 || r.Budget.WindowSeconds != 3600 ||
					!r.Budget.NextFreeAt.Equal(now) || !budget.NextFreeAt.IsZero() {
					t.Errorf("budget = %+v, want 5 of 20 used, a slot free now", r.Budget)
				}
				if r.Drain.Backlog != 8 || r.Drain.FreeNow != 15 || r.Drain.LimitedByCap || r.DrainETASeconds != 0 {
					t.Errorf("drain = %+v (%ds), want the backlog of 8 in the 15 free slots at once", r.Drain, r.DrainETASeconds)
				}
			},
		},
		{
			name: "a consumer at work, the cap spent", limit: 5,
			setup: func(t *testing.T, js jetstream.JetStream, limit int) budget.State {
				return traffic(t, js, limit, 5, now)
			},
			check: func(t *testing.T, r status.Report, budget budget.State) {
				wantConsumer(t, r)
				if r.Budget.Used != 5 || r.Budget.Limit != 5 || r.Budget.Remaining != 0 || !r.Budget.NextFreeAt.Equal(budget.NextFreeAt) {
					t.Errorf("budget = %+v, want 5 of 5 used, next free at %s as the budget says", r.Budget, budget.NextFreeAt)
				}
				d := r.Budget.NextFreeAt.Sub(now)
				if d < hold || d > hold+slice+time.Second {
					t.Errorf("next free in %s, want one window and margin (%s), up to one slice more", d, hold)
				}
				if budget.Hold < hold || budget.Hold > hold+slice {
					t.Errorf("a grant holds its slot %s, want one window and margin (%s), up to one slice more", budget.Hold, hold)
				}
				// 8 to send, 5 a window, all 5 slots free at once when the next
				// one frees: 5 then, the last 3 one hold later.
				if want := int64((d + budget.Hold).Round(time.Second) / time.Second); r.DrainETASeconds != want || !r.Drain.LimitedByCap || r.Drain.Backlog != 8 {
					t.Errorf("drain = %+v (%ds), want %ds at the cap", r.Drain, r.DrainETASeconds, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := natstest.Connect(t, natstest.Start(t).URL())
			budget := tt.setup(t, js, tt.limit)
			before := objects(t, js)
			r, err := status.Collect(context.Background(), js, status.Options{
				Limit: tt.limit, Window: window, Now: func() time.Time { return now },
			})
			if after := objects(t, js); after != before {
				t.Errorf("Collect changed the topology: before %s, after %s", before, after)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "IONIX_ACTION_ITEMS") || !strings.Contains(err.Error(), "publish") {
					t.Fatalf("err = %v, want %v naming the stream and what to run", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !r.GeneratedAt.Equal(now) {
				t.Errorf("generated at %s, want %s", r.GeneratedAt, now)
			}
			tt.check(t, r, budget)
		})
	}
}

func wantConsumer(t *testing.T, r status.Report) {
	t.Helper()
	if r.Stream.Messages != 10 || r.Stream.LastSeq != 10 {
		t.Errorf("stream = %+v, want 10 messages", r.Stream)
	}
	c := r.Consumer
	// 6 never delivered; in flight the refetched one and the untouched one.
	if !c.Exists || c.Pending != 6 || c.AckPending != 2 || c.Redelivered != 1 || c.DeliveredSeq != 4 || c.AckFloorSeq != 1 {
		t.Errorf("consumer = %+v, want pending 6, ack pending 2, redelivered 1, delivered 4, ack floor 1", c)
	}
	if r.DeadLetters != 1 {
		t.Errorf("dead letters = %d, want 1", r.DeadLetters)
	}
	if len(r.Problems) != 0 {
		t.Errorf("problems = %q, want none", r.Problems)
	}
}

// objects lists the streams (KV buckets included) and consumers that exist.
func objects(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	ctx := context.Background()
	lister := js.StreamNames(ctx)
	var streams []string
	for n := range lister.Name() {
		streams = append(streams, n)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(streams)
	var out []string
	for _, n := range streams {
		s, err := js.Stream(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		cl := s.ConsumerNames(ctx)
		var cs []string
		for c := range cl.Name() {
			cs = append(cs, c)
		}
		slices.Sort(cs)
		out = append(out, n+"["+strings.Join(cs, " ")+"]")
	}
	return strings.Join(out, " ")
}

func TestStatusCollectReadsAConfiguredCapAndNames(t *testing.T) {
	js := natstest.Connect(t, natstest.Start(t).URL())
	ctx := context.Background()
	names := topology.Names{Stream: "ACME_ITEMS", SubjectPrefix: "acme.items", Consumer: "snow-acme", BudgetBucket: "acme_budget"}
	topo, err := topology.Ensure(ctx, js, topology.Options{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if _, err := js.Publish(ctx, fmt.Sprintf("acme.items.opened.dns%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	b, err := budget.NewKV(topo.Budget, 4, time.Minute, budget.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, 4); err != nil {
		t.Fatal(err)
	}
	r, err := status.Collect(ctx, js, status.Options{Names: names, Limit: 4, Window: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stream.Name != "ACME_ITEMS" || r.Stream.Messages != 7 || r.Consumer.Name != "snow-acme" || r.Consumer.Pending != 7 {
		t.Errorf("stream %+v, consumer %+v", r.Stream, r.Consumer)
	}
	// 7 to send, 4 a minute, all 4 used just now: the 4 slots free one hold on
	// and take 4, their slots free one hold later and take the last 3.
	const hold = time.Minute + time.Minute/100
	if r.Budget.Bucket != "acme_budget" || r.Budget.Used != 4 || r.DrainETASeconds != int64((2*hold).Round(time.Second)/time.Second) {
		t.Errorf("budget %+v, drain %ds, want 4 used in acme_budget, drain %s", r.Budget, r.DrainETASeconds, 2*hold)
	}
}

func TestStatusCollectReportsAnUnreadableLedger(t *testing.T) {
	js := natstest.Connect(t, natstest.Start(t).URL())
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	publishItems(t, js, 2)
	if _, err := topo.Budget.Put(ctx, budget.DefaultKey, []byte{0x7f, 1, 2}); err != nil {
		t.Fatal(err)
	}
	r, err := status.Collect(ctx, js, status.Options{Limit: 1000, Window: time.Hour})
	if err != nil {
		t.Fatalf("a corrupt ledger failed the whole status: %v", err)
	}
	if r.Budget.Readable || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "delete the key") {
		t.Errorf("budget %+v, problems %q; want the ledger reported unreadable with its fix", r.Budget, r.Problems)
	}
	if r.Consumer.Pending != 2 {
		t.Errorf("pending = %d, want 2: the rest of the status still shows", r.Consumer.Pending)
	}
}

func TestStatusCollectRejectsABadCap(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		window time.Duration
	}{
		{"no limit", 0, time.Hour},
		{"no window", 1000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := status.Collect(context.Background(), nil, status.Options{Limit: tt.limit, Window: tt.window}); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestReportJSONHasTheFieldsOfTheSpec: SPEC §7's fields, with their names and types.
func TestStatusReportJSONHasTheFieldsOfTheSpec(t *testing.T) {
	now := time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)
	r := status.Report{
		GeneratedAt: now,
		Stream:      status.StreamStatus{Name: "IONIX_ACTION_ITEMS", Messages: 12345},
		Consumer:    status.ConsumerStatus{Name: "servicenow", Exists: true, Pending: 4200, AckPending: 8, Redelivered: 2},
		Budget:      status.BudgetStatus{Used: 612, Limit: 1000, WindowSeconds: 3600, NextFreeAt: now.Add(3 * time.Minute)},
		DeadLetters: 3, DrainETASeconds: 15120, Problems: []string{},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Stream struct {
			Messages *uint64 `json:"messages"`
		} `json:"stream"`
		Consumer struct {
			Pending     *uint64 `json:"pending"`
			AckPending  *int    `json:"ack_pending"`
			Redelivered *int    `json:"redelivered"`
		} `json:"consumer"`
		Budget struct {
			Used          *int     `json:"used"`
			Limit         *int     `json:"limit"`
			WindowSeconds *float64 `json:"window_seconds"`
			NextFreeAt    *string  `json:"next_free_at"`
		} `json:"budget"`
		DeadLetters     *uint64 `json:"dead_letters"`
		DrainETASeconds *int64  `json:"drain_eta_seconds"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Stream.Messages == nil || *got.Stream.Messages != 12345 || got.Consumer.Pending == nil || *got.Consumer.Pending != 4200 ||
		got.Consumer.AckPending == nil || *got.Consumer.AckPending != 8 || got.Consumer.Redelivered == nil || *got.Consumer.Redelivered != 2 ||
		got.Budget.Used == nil || *got.Budget.Used != 612 || got.Budget.Limit == nil || *got.Budget.Limit != 1000 ||
		got.Budget.WindowSeconds == nil || *got.Budget.WindowSeconds != 3600 || got.DeadLetters == nil || *got.DeadLetters != 3 ||
		got.DrainETASeconds == nil || *got.DrainETASeconds != 15120 || got.Budget.NextFreeAt == nil {
		t.Fatalf("JSON lacks or misstates a field of SPEC §7:\n%s", b)
	}
	if at, err := time.Parse(time.RFC3339, *got.Budget.NextFreeAt); err != nil || !at.Equal(now.Add(3*time.Minute)) {
		t.Errorf("next_free_at = %q (%v), want RFC 3339 of %s", *got.Budget.NextFreeAt, err, now.Add(3*time.Minute))
	}
	if !strings.Contains(string(b), `"window_seconds":3600,`) {
		t.Errorf("window_seconds is not a plain number:\n%s", b)
	}
}

// TestStatusBacklogByUrgency: the messages not yet acknowledged, counted by band from
// the ack floor on, but for those the express lane posted ahead; each band's ETA
// counting the bands sent before it; beyond the scan limit a problem says the count
// is partial.
func TestStatusBacklogByUrgency(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range []float64{3, 9.5, 7.2, 3, 3, 9.1, 2} {
		body := fmt.Sprintf(`{"id":"u-%d","title":"t","type":"DNS","urgency":%g}`, i, u)
		if _, err := js.Publish(ctx, "ionix.action_items.opened.dns", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// The first is acknowledged: the floor moves past it.
	m := fetch(t, topo.Consumer, 1)[0]
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	// A cap of 2 an hour, spent: each further send waits a window.
	o := status.Options{Limit: 2, Window: window}
	r, err := status.Collect(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"high": 2, "medium": 1, "low": 3}
	if fmt.Sprint(r.BacklogByUrgency) != fmt.Sprint(want) {
		t.Errorf("backlog_by_urgency %v, want %v", r.BacklogByUrgency, want)
	}
	eta := r.DrainETAByUrgency
	if !(eta["high"] <= eta["medium"] && eta["medium"] <= eta["low"]) || eta["low"] != r.DrainETASeconds {
		t.Errorf("drain_eta_by_urgency %v (all: %d): not in the order the bands are sent", eta, r.DrainETASeconds)
	}
	raw, _ := json.Marshal(r)
	if !strings.Contains(string(raw), `"backlog_by_urgency":{"high":2,"low":3,"medium":1}`) || !strings.Contains(string(raw), `"drain_eta_by_urgency":{`) {
		t.Errorf("status --json lacks the per-band fields: %s", raw)
	}
	// The express lane posted the first High item ahead of the backlog (the ledger
	// records it): it waits for its acknowledgement, but it is not backlog any more.
	if err := ledger.New(topo.Tickets).Put(ctx, "u-1", ledger.Ticket{Number: "INC0010001", StreamSeq: 2}); err != nil {
		t.Fatal(err)
	}
	if r, err = status.Collect(ctx, js, o); err != nil || r.BacklogByUrgency["high"] != 1 || r.BacklogByUrgency["low"] != 3 {
		t.Errorf("with a High item sent ahead: backlog_by_urgency %v, %v; want high 1, low 3", r.BacklogByUrgency, err)
	}
	o.ScanLimit = 2
	r, err = status.Collect(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, "counts the first 2 messages only") }) {
		t.Errorf("a partial count is not reported: %v", r.Problems)
	}
}
