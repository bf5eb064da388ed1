package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/topology"
)

// Defaults of [Options].
const (
	DefaultItems       = 10000
	DefaultConcurrency = 16
	DefaultTimeout     = 10 * time.Minute
)

// The budget of a run that has it on: the KV budget `consume` spends, with its cap
// raised out of the way as ../shared/peers/side-by-side.sh raises it (10^8 sends
// per hour), so that every grant is still read and written through the budget
// bucket but none is ever refused.
const (
	BudgetCap    = 100_000_000
	BudgetWindow = time.Hour
)

// Budgets of a [Result].
const (
	BudgetKV  = "kv"  // the KV budget, cap BudgetCap per BudgetWindow
	BudgetOff = "off" // no budget (budget.Unlimited): --cap-off
)

// Modes of a [Result].
const (
	ModeBacklog = "backlog"
	ModeRate    = "rate"
	ModeBroker  = "broker"
)

// sampleSeed picks the sample items: the same items on every run.
const sampleSeed = 1

// Options configure a [Run]. Zero values take the defaults.
type Options struct {
	Items       int           // action items to send (default DefaultItems)
	Concurrency int           // the consumer's concurrency (default DefaultConcurrency)
	Latency     time.Duration // the emulator's response latency (default 0)
	// Rate, when above 0, publishes the items one at a time at Rate items per
	// second with the consumer already running; 0 publishes them all first, as
	// fast as possible, and then drains the backlog.
	Rate float64
	// Timeout bounds the run from the first publish (default: three times what
	// the items should take at Latency, Concurrency and Rate, at least
	// DefaultTimeout).
	Timeout time.Duration
	// HTTPClient, when set, is the ServiceNow client's HTTP client (its
	// transport); nil takes the client's default.
	HTTPClient *http.Client
	// CapOff runs without a budget (budget.Unlimited) instead of the KV budget
	// with its cap raised (BudgetCap per BudgetWindow): to compare with.
	CapOff bool
	// NATSURL, when set, is an external nats-server (JetStream on) to run against
	// instead of an embedded one; the run's objects there get names of their own
	// and are deleted at the end.
	NATSURL string
	Log     zerolog.Logger // the pipeline's logs; the zero value logs nothing
}

func (o Options) withDefaults() Options {
	if o.Items <= 0 {
		o.Items = DefaultItems
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Timeout <= 0 {
		// Three times what the run should take, at least DefaultTimeout.
		expected := time.Duration(float64(o.Items) * float64(o.Latency+time.Millisecond) / float64(o.Concurrency))
		if o.Rate > 0 {
			expected = max(expected, time.Duration(float64(o.Items)/o.Rate*float64(time.Second)))
		}
		o.Timeout = max(DefaultTimeout, 3*expected)
	}
	return o
}

// Validate reports every problem of the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.Items < 0 || o.Items > 1_000_000 {
		errs = append(errs, fmt.Errorf("items must be 1..1000000, not %d", o.Items))
	}
	if o.Concurrency < 0 || o.Concurrency > 1024 {
		errs = append(errs, fmt.Errorf("concurrency must be 1..1024, not %d", o.Concurrency))
	}
	if o.Latency < 0 || o.Latency > time.Minute {
		errs = append(errs, fmt.Errorf("latency must be 0..1m, not %s", o.Latency))
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate must be 0 (backlog) or a positive number of items per second, not %g", o.Rate))
	}
	return errors.Join(errs...)
}

// Result is what one run measured; it is also the JSON of `bench --json`.
type Result struct {
	Mode        string  `json:"mode"` // backlog or rate
	Items       int     `json:"items"`
	Concurrency int     `json:"concurrency"`
	LatencyMS   float64 `json:"latency_ms"`   // the emulator's response latency
	Rate        float64 `json:"rate"`         // items/s asked for (0: backlog)
	Budget      string  `json:"budget"`       // BudgetKV or BudgetOff
	BudgetLimit int     `json:"budget_limit"` // sends per BudgetWindow; 0 when off
	// BudgetUsed is how many grants the budget's ledger holds at the end: one per
	// send, read back from the bucket (0 when off).
	BudgetUsed int    `json:"budget_used"`
	NATS       string `json:"nats"` // NATSInProcess or NATSExternal

	// Seconds runs from the first publish to the last settlement.
	Seconds        float64 `json:"seconds"`
	ThroughputPerS float64 `json:"throughput_per_s"` // Items / Seconds
	// PublishPerS is the publish rate reached: the whole input's, or the paced one.
	PublishPerS float64 `json:"publish_per_s"`
	// DrainPerS is the consumer's rate from its start to the last settlement
	// (backlog mode: the drain alone; rate mode: about the publish rate).
	DrainPerS float64 `json:"drain_per_s"`

	// Per item, from JetStream storing the message to its double ack confirmed.
	P50MS float64 `json:"p50_ms"`
	P90MS float64 `json:"p90_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`

	// MaxRSSMB is this process's peak: with an embedded server, the server's
	// memory included.
	MaxRSSMB  float64 `json:"max_rss_mb"`
	RSSSource string  `json:"rss_source"` // VmHWM, or MemStats.Sys where there is no /proc
	// CPUMSPerItem is the process's CPU time (user and system, every goroutine:
	// the embedded server if any, emulator and pipeline) over the run, per item: a
	// cost that does not depend on what else the machine runs. 0 where it is not
	// measured.
	CPUMSPerItem float64 `json:"cpu_ms_per_item"`

	Created      int64 `json:"created"`       // incidents the consumer created
	Imports      int   `json:"imports"`       // import requests the emulator saw
	Retried      int64 `json:"retried"`       // posts that failed and were retried
	DeadLettered int64 `json:"dead_lettered"` // should be 0
}

// Run sets up the rig, sends the items through the pipeline and reports what it
// measured. It removes everything it created before it returns.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	o = o.withDefaults()
	res := Result{Mode: ModeBacklog, Items: o.Items, Concurrency: o.Concurrency,
		LatencyMS: ms(o.Latency), Rate: o.Rate, Budget: BudgetKV, BudgetLimit: BudgetCap, NATS: NATSInProcess}
	if o.Rate > 0 {
		res.Mode = ModeRate
	}
	if o.CapOff {
		res.Budget, res.BudgetLimit = BudgetOff, 0
	}
	if o.NATSURL != "" {
		res.NATS = NATSExternal
	}
	items := ionix.SampleItems(o.Items, sampleSeed)
	in, err := encode(items)
	if err != nil {
		return res, err
	}
	resetPeakRSS()
	r, err := startRig(rigOptions{natsURL: o.NATSURL, emulator: true, latency: o.Latency})
	if err != nil {
		return res, err
	}
	defer r.close()
	p, err := newPipeline(ctx, r, o)
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tl, err := p.drive(ctx, r, items, in, o.Rate)
	if err != nil {
		return res, err
	}
	lat, last := p.rec.latencies()
	rss, source := peakRSS()
	if p.budget != nil {
		st, err := p.budget.State(ctx)
		if err != nil {
			return res, err
		}
		res.BudgetUsed = st.Used
	}

	s := p.cons.Stats()
	res.Created, res.Retried, res.DeadLettered = s.Created, s.Failed, p.rec.dead.Load()
	res.Imports = r.sim.ImportCount()
	res.Seconds = last.Sub(tl.first).Seconds()
	res.ThroughputPerS = perSecond(o.Items, last.Sub(tl.first))
	res.PublishPerS = perSecond(o.Items, tl.published.Sub(tl.first))
	res.DrainPerS = perSecond(o.Items, last.Sub(tl.consumerStart))
	slices.Sort(lat)
	res.P50MS, res.P90MS = ms(quantile(lat, 0.50)), ms(quantile(lat, 0.90))
	res.P99MS, res.MaxMS = ms(quantile(lat, 0.99)), ms(quantile(lat, 1))
	res.MaxRSSMB, res.RSSSource = float64(rss)/(1<<20), source
	res.CPUMSPerItem = ms(tl.cpu) / float64(o.Items)
	return res, nil
}

// timeline is when the phases of a run began, and the CPU time they took.
type timeline struct {
	first         time.Time // the first publish
	published     time.Time // the last publish acknowledged
	consumerStart time.Time
	cpu           time.Duration // from the first publish to the last settlement
}

// drive publishes the items (backlog: all, then starts the consumer; rate: with
// the consumer running) and waits until every message is settled. It stops the
// consumer before it returns.
func (p *pipeline) drive(ctx context.Context, r *rig, items []ionix.ActionItem, in input, rate float64) (tl timeline, err error) {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	var running bool
	startConsumer := func() {
		tl.consumerStart, running = time.Now(), true
		go func() { ran <- p.cons.Run(runCtx) }()
	}
	defer func() {
		if running {
			stop()
			if rerr := <-ran; rerr != nil && err == nil {
				err = fmt.Errorf("consumer: %w", rerr)
			}
		}
	}()

	cpu0 := cpuTime()
	if rate > 0 {
		startConsumer()
		// A pull request waiting at the server: the consumer is ready.
		if err := waitConsumer(ctx, p.topo.Consumer, func(i *jetstream.ConsumerInfo) bool { return i.NumWaiting > 0 }); err != nil {
			return tl, fmt.Errorf("consumer not ready: %w", err)
		}
		tl.first = time.Now()
		err = publishPaced(ctx, r, items, in, rate)
	} else {
		tl.first = time.Now()
		err = publishAll(ctx, r, in)
	}
	if err != nil {
		return tl, err
	}
	tl.published = time.Now()
	if !running {
		startConsumer()
	}
	select {
	case <-p.rec.all:
	case err := <-ran:
		running = false
		if err == nil {
			err = ctx.Err()
		}
		return tl, fmt.Errorf("consumer stopped with %d of %d items settled: %w", p.rec.count.Load(), len(items), err)
	case <-ctx.Done():
		return tl, fmt.Errorf("%d of %d items settled: %w", p.rec.count.Load(), len(items), ctx.Err())
	}
	tl.cpu = cpuTime() - cpu0
	return tl, nil
}

// pipeline is the consumer of a run, built as `ionixsnow consume` builds it (the
// KV budget with its cap raised, or no budget with CapOff), its messages observed.
type pipeline struct {
	topo   *topology.Topology
	cons   *consumer.Consumer
	budget *budget.KV // nil with CapOff
	rec    *recorder
}

func newPipeline(ctx context.Context, r *rig, o Options) (*pipeline, error) {
	// As `consume` sets it up (config defaults), with MaxAckPending covering the
	// concurrency.
	topo, err := topology.Ensure(ctx, r.js, topology.Options{Names: r.names, MaxAckPending: max(1000, o.Concurrency)})
	if err != nil {
		return nil, err
	}
	var opts []servicenow.Option
	if o.HTTPClient != nil {
		opts = append(opts, servicenow.WithHTTPClient(o.HTTPClient))
	}
	snow, err := servicenow.New(servicenow.Config{
		InstanceURL: r.url,
		ClientID:    "ionix", ClientSecret: "ionix",
		Username: "ionix", Password: "ionix",
	}, o.Log, opts...)
	if err != nil {
		return nil, err
	}
	if err := snow.Authenticate(ctx); err != nil {
		return nil, err
	}
	var grants budget.Granter = budget.Unlimited{}
	var kvBudget *budget.KV
	if !o.CapOff {
		if kvBudget, err = budget.NewKV(topo.Budget, BudgetCap, BudgetWindow, budget.WithLogger(o.Log)); err != nil {
			return nil, fmt.Errorf("budget: %w", err)
		}
		grants = kvBudget
	}
	rec := newRecorder(o.Items)
	cons, err := consumer.New(consumer.Deps{
		Consumer:    observedConsumer{Consumer: topo.Consumer, rec: rec},
		Importer:    snow,
		Ledger:      ledger.New(topo.Tickets),
		JetStream:   r.js,
		DeadLetters: dlq.New(r.js, topo.Names),
		Budget:      grants,
		Stream:      topo.Stream,
		Log:         o.Log,
	}, consumer.Options{
		Concurrency: o.Concurrency,
		Filter:      mapping.Filter{}, // every item is sent
		Mapping:     mapping.DefaultOptions(),
	})
	if err != nil {
		return nil, err
	}
	return &pipeline{topo: topo, cons: cons, budget: kvBudget, rec: rec}, nil
}

// input is the items as the publisher reads them, encoded before the clock starts.
type input struct {
	ndjson []byte   // all of them, one a line (backlog mode)
	raws   [][]byte // each one (rate mode)
}

func encode(items []ionix.ActionItem) (input, error) {
	in := input{raws: make([][]byte, len(items))}
	var b bytes.Buffer
	for i, it := range items {
		raw, err := json.Marshal(it)
		if err != nil {
			return in, fmt.Errorf("encode item %q: %w", it.ID, err)
		}
		in.raws[i] = raw
		b.Write(raw)
		b.WriteByte('\n')
	}
	in.ndjson = b.Bytes()
	return in, nil
}

// publishAll publishes every item as `ionixsnow publish` does: NDJSON through
// PublishAll, asynchronously.
func publishAll(ctx context.Context, r *rig, in input) error {
	res, err := publisher.New(r.js, r.names.SubjectPrefix).PublishAll(ctx, bytes.NewReader(in.ndjson), ionix.EventOpened, nil)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if res.Published != len(in.raws) {
		return fmt.Errorf("published %d of %d items (%d duplicate, %d invalid)", res.Published, len(in.raws), res.Duplicates, res.Invalid)
	}
	return nil
}

// publishPaced publishes item i at first publish + i/rate, one at a time (Publish,
// waiting for each acknowledgement). An item that is late is published at once.
func publishPaced(ctx context.Context, r *rig, items []ionix.ActionItem, in input, rate float64) error {
	pub := publisher.New(r.js, r.names.SubjectPrefix)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	begin := time.Now()
	for i, it := range items {
		due := begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		dup, err := pub.Publish(ctx, in.raws[i], it, ionix.EventOpened)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("item %q published twice", it.ID)
		}
	}
	return nil
}

// quantile is the q-quantile (nearest rank) of sorted durations; 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
