package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/backlog"
	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/topology"
)

// ErrNoStream is what Collect returns (wrapped, with the stream's name and what to
// run) when the action-item stream does not exist yet.
var ErrNoStream = errors.New("the action-item stream does not exist yet")

type noStreamError struct{ stream string }

func (e noStreamError) Error() string {
	return fmt.Sprintf("stream %s does not exist yet — run `ionixsnow publish` or `ionixsnow consume` first", e.stream)
}

func (e noStreamError) Unwrap() error { return ErrNoStream }

// Options says what Collect reads and the cap it measures the backlog against.
type Options struct {
	// Names of the stream, consumer, dead-letter stream and budget bucket; empty
	// fields take the defaults.
	Names topology.Names
	// Limit and Window are the cap: at most Limit sends in any Window
	// (cap.max_per_window, cap.window).
	Limit  int
	Window time.Duration
	// Margin is how long past the window a grant holds its slot; zero takes the
	// consumer's default, Window/100.
	Margin time.Duration
	// BudgetKey is the ledger's key in the budget bucket; empty takes
	// budget.DefaultKey.
	BudgetKey string
	// Burst is the burst of even pacing (config.Cap.PacedBurst), 0 when sends
	// are not paced; Reserve the sends held for High items (config.Cap.Reserve).
	Burst, Reserve int
	// ScanLimit bounds the messages read to count the backlog by band (default
	// 200,000).
	ScanLimit int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log gets a debug line per object read (default: nothing).
	Log zerolog.Logger
}

// Report is the status: SPEC §7's fields, and a few more.
type Report struct {
	GeneratedAt time.Time      `json:"generated_at"`
	Stream      StreamStatus   `json:"stream"`
	Consumer    ConsumerStatus `json:"consumer"`
	Budget      BudgetStatus   `json:"budget"`
	// DeadLetters is the number of messages in the dead-letter stream.
	DeadLetters uint64 `json:"dead_letters"`
	// DrainETASeconds is Drain in whole seconds.
	DrainETASeconds int64 `json:"drain_eta_seconds"`
	Drain           ETA   `json:"drain"`
	// BacklogByUrgency is the messages not acknowledged yet by ServiceNow urgency
	// band ("high", "medium", "low"; SPEC §10), read from the stream from the ack
	// floor on (up to Options.ScanLimit of them; beyond, a problem says so).
	BacklogByUrgency map[string]uint64 `json:"backlog_by_urgency"`
	// DrainETAByUrgency is, per band, the seconds until its last message is sent:
	// High ones go first, then Medium, then Low, so each band's ETA counts the
	// bands before it.
	DrainETAByUrgency map[string]int64 `json:"drain_eta_by_urgency"`
	// Problems are what the operator should know: objects not created yet, a
	// budget that could not be read. Never nil.
	Problems []string `json:"problems"`
}

// StreamStatus is the action-item stream.
type StreamStatus struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// ConsumerStatus is the durable consumer's backlog.
type ConsumerStatus struct {
	Name string `json:"name"`
	// Exists is false before the first consume created the consumer.
	Exists bool `json:"exists"`
	// Pending is the number of messages not delivered yet.
	Pending uint64 `json:"pending"`
	// AckPending is the number delivered and not acknowledged yet (in flight, or
	// waiting for a redelivery).
	AckPending int `json:"ack_pending"`
	// Redelivered is the number delivered more than once and not acknowledged yet.
	Redelivered int `json:"redelivered"`
	// Waiting is the number of pull requests waiting at the server.
	Waiting int `json:"waiting"`
	// DeliveredSeq is the stream sequence last delivered; AckFloorSeq the one up
	// to which every message is acknowledged.
	DeliveredSeq uint64   `json:"delivered_seq"`
	AckFloorSeq  uint64   `json:"ack_floor_seq"`
	subjects     []string // its filter
}

// BudgetStatus is the global send budget.
type BudgetStatus struct {
	Bucket string `json:"bucket"`
	// Used is the grants still holding a slot (sends of the last window + margin).
	Used          int     `json:"used"`
	Limit         int     `json:"limit"`
	WindowSeconds float64 `json:"window_seconds"`
	// NextFreeAt is when the next slot frees: GeneratedAt when one is free now.
	NextFreeAt time.Time `json:"next_free_at"`
	// Remaining is how many sends would be granted now.
	Remaining     int     `json:"remaining"`
	MarginSeconds float64 `json:"margin_seconds"`
	// Readable is false when the ledger could not be read (see Problems); the
	// figures then assume an empty budget.
	Readable bool `json:"readable"`
}

func (o Options) margin() time.Duration {
	if o.Margin > 0 {
		return o.Margin
	}
	return o.Window / 100
}

// Collect reads the status. It creates nothing. It fails with ErrNoStream when the
// action-item stream does not exist, and with the error when NATS does not answer;
// everything missing beyond the stream is reported in the Report.
func Collect(ctx context.Context, js jetstream.JetStream, o Options) (Report, error) {
	if o.Limit < 1 {
		return Report{}, fmt.Errorf("status: cap limit %d, want at least 1", o.Limit)
	}
	if o.Window < time.Millisecond {
		return Report{}, fmt.Errorf("status: cap window %s, want at least 1ms", o.Window)
	}
	names := o.Names.WithDefaults()
	clock := o.Now
	if clock == nil {
		clock = time.Now
	}
	// One instant for the whole report, the budget included.
	now := clock().UTC()
	r := Report{GeneratedAt: now, Problems: []string{}}

	st, err := js.Stream(ctx, names.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Report{}, noStreamError{names.Stream}
	}
	if err != nil {
		return Report{}, fmt.Errorf("read stream %s: %w", names.Stream, err)
	}
	r.Stream = streamStatus(names.Stream, st.CachedInfo())
	o.Log.Debug().Str("stream", names.Stream).Uint64("messages", r.Stream.Messages).Msg("read stream")

	if r.Consumer, err = consumerStatus(ctx, js, names); err != nil {
		return Report{}, err
	}
	backlog := r.Consumer.Pending + uint64(max(r.Consumer.AckPending, 0))
	if !r.Consumer.Exists {
		// consume creates it delivering from the first message.
		backlog = r.Stream.Messages
		r.Problems = append(r.Problems, fmt.Sprintf(
			"consumer %s does not exist yet: `ionixsnow consume` creates it and starts from the first message; the drain ETA counts all %d messages of the stream",
			names.Consumer, r.Stream.Messages))
	}

	if r.DeadLetters, err = deadLetters(ctx, js, names); err != nil {
		return Report{}, err
	}

	bs, err := budgetState(ctx, js, names, o, func() time.Time { return now })
	if err != nil {
		return Report{}, err
	}
	r.Budget = BudgetStatus{
		Bucket:        names.BudgetBucket,
		Used:          bs.state.Used,
		Limit:         o.Limit,
		WindowSeconds: o.Window.Seconds(),
		NextFreeAt:    now,
		Remaining:     bs.state.Remaining(),
		MarginSeconds: o.margin().Seconds(),
		Readable:      bs.problem == "",
	}
	if !bs.state.NextFreeAt.IsZero() {
		r.Budget.NextFreeAt = bs.state.NextFreeAt.UTC()
	}
	if bs.problem != "" {
		r.Problems = append(r.Problems, bs.problem)
	}
	o.Log.Debug().Int("used", r.Budget.Used).Int("limit", o.Limit).Msg("read budget")

	ledger := LedgerOf(bs.state, o.margin())
	r.Drain = DrainETA(backlog, ledger, now)
	r.DrainETASeconds = r.Drain.Seconds()
	if err := r.byUrgency(ctx, js, st, names, o, ledger, now); err != nil {
		return Report{}, err
	}
	return r, nil
}

// byUrgency counts the backlog by band and the drain ETA of each.
func (r *Report) byUrgency(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, names topology.Names, o Options, l Ledger, now time.Time) error {
	r.BacklogByUrgency = map[string]uint64{}
	r.DrainETAByUrgency = map[string]int64{}
	subjects, from := r.Consumer.subjects, r.Consumer.AckFloorSeq+1
	if !r.Consumer.Exists {
		subjects, from = []string{names.ItemSubjectPrefix() + ".*.*"}, r.Stream.FirstSeq
	}
	limit := o.ScanLimit
	if limit <= 0 {
		limit = 200_000
	}
	ix := backlog.NewIndex()
	complete := true
	if r.Stream.LastSeq >= from && len(subjects) > 0 {
		var err error
		if complete, err = backlog.Scan(ctx, js, names.Stream, subjects, from, limit, ix); err != nil {
			if ctx.Err() != nil {
				return err
			}
			r.Problems = append(r.Problems, fmt.Sprintf("the backlog by urgency could not be read: %v", err))
		}
	}
	if !complete {
		r.Problems = append(r.Problems, fmt.Sprintf("the backlog by urgency counts the first %d messages only", limit))
	}
	counts, ahead := ix.Counts(), bandsSentAhead(ctx, js, st, names, ix)
	var before uint64
	for b := backlog.High; b <= backlog.Low; b++ {
		n := uint64(counts[b] - ahead[b])
		r.BacklogByUrgency[b.String()] = n
		before += n
		if n == 0 {
			r.DrainETAByUrgency[b.String()] = 0
			continue
		}
		r.DrainETAByUrgency[b.String()] = DrainETA(before, l, now).Seconds()
	}
	return nil
}

func streamStatus(name string, info *jetstream.StreamInfo) StreamStatus {
	s := StreamStatus{Name: name}
	if info == nil {
		return s
	}
	s.Messages = info.State.Msgs
	s.Bytes = info.State.Bytes
	s.FirstSeq = info.State.FirstSeq
	s.LastSeq = info.State.LastSeq
	return s
}

func consumerStatus(ctx context.Context, js jetstream.JetStream, names topology.Names) (ConsumerStatus, error) {
	cs := ConsumerStatus{Name: names.Consumer}
	c, err := js.Consumer(ctx, names.Stream, names.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return cs, nil
	}
	if err != nil {
		return cs, fmt.Errorf("read consumer %s: %w", names.Consumer, err)
	}
	info := c.CachedInfo()
	if info == nil {
		return cs, fmt.Errorf("read consumer %s: no info", names.Consumer)
	}
	cs.Exists = true
	cs.Pending = info.NumPending
	cs.AckPending = info.NumAckPending
	cs.Redelivered = info.NumRedelivered
	cs.Waiting = info.NumWaiting
	cs.DeliveredSeq = info.Delivered.Stream
	cs.AckFloorSeq = info.AckFloor.Stream
	cs.subjects = info.Config.FilterSubjects
	if len(cs.subjects) == 0 && info.Config.FilterSubject != "" {
		cs.subjects = []string{info.Config.FilterSubject}
	}
	return cs, nil
}

// deadLetters is the number of the names' tenant's messages in the dead-letter
// stream (SPEC §9: a tenant's are under <dlq prefix>.<tenant>, the single-tenant
// form's are the rest), 0 when the stream does not exist yet (consume creates it).
func deadLetters(ctx context.Context, js jetstream.JetStream, names topology.Names) (uint64, error) {
	counts, _, err := topology.DLQCounts(ctx, js, names)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n, nil
}

type budgetRead struct {
	state   budget.State
	problem string // why the ledger could not be read; empty when it could
}

// budgetState reads the ledger through the consumer's own budget.KV, which only
// reads. A missing bucket or key is an empty budget; a ledger that cannot be
// decoded is a problem, not a failure, so the rest of the status still shows.
func budgetState(ctx context.Context, js jetstream.JetStream, names topology.Names, o Options, now func() time.Time) (budgetRead, error) {
	empty := budgetRead{state: budget.State{Limit: o.Limit, WindowSeconds: o.Window.Seconds(), At: now()}}
	kv, err := js.KeyValue(ctx, names.BudgetBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return empty, nil
	}
	if err != nil {
		return budgetRead{}, fmt.Errorf("read budget bucket %s: %w", names.BudgetBucket, err)
	}
	opts := []budget.Option{budget.WithClock(now), budget.WithMargin(o.margin()), budget.WithLogger(o.Log)}
	if o.BudgetKey != "" {
		opts = append(opts, budget.WithKey(o.BudgetKey))
	}
	if o.Burst > 0 {
		opts = append(opts, budget.WithPacing(o.Burst))
	}
	if o.Reserve > 0 {
		opts = append(opts, budget.WithReserve(o.Reserve))
	}
	b, err := budget.NewKV(kv, o.Limit, o.Window, opts...)
	if err != nil {
		return budgetRead{}, fmt.Errorf("read budget: %w", err)
	}
	st, err := b.State(ctx)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return budgetRead{}, err
		}
		empty.problem = fmt.Sprintf("%v; the budget figures and the drain ETA assume no send in the last window", err)
		return empty, nil
	}
	return budgetRead{state: st}, nil
}
