package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
)

// Metadata keys of the replay's durable consumer: the plan it was created for, so a
// resumed replay keeps its range and start time even when the stream grew.
const (
	metaLastSeq   = "ionixsnow_replay_last_seq"
	metaStartedAt = "ionixsnow_replay_started_at"
)

// durableIdle is how long a stopped replay's consumer is kept for a resume.
const durableIdle = 7 * 24 * time.Hour

// Options are what a replay runs with besides its plan.
type Options struct {
	// Deps are the consumer's parts; Consumer is filled in by Run.
	Deps consumer.Deps
	// Consumer are the pipeline's options (filter, mapping, concurrency, backoff …);
	// Replay is filled in by Run.
	Consumer consumer.Options
	// Present, for --missing-only, reports whether an item's incident exists.
	Present func(ctx context.Context, id string) (bool, error)
	AckWait time.Duration
	// Budget, when set, feeds the ETA with the global cap's state.
	Budget *budget.KV
	// Progress, when set, is called every ProgressEvery (default 2s) and at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is where a replay stands.
type Progress struct {
	Plan Plan
	Done uint64 // messages of the range handled (sent, skipped or filtered)
	// Pass is the urgency band being re-sent (Plan.Order); InStreamOrder when the
	// range goes in one pass (a replay begun by a version without passes).
	Pass     Pass
	Stats    consumer.Snapshot // of this run
	Elapsed  time.Duration     // of this run
	ETA      time.Duration     // estimated time to finish; 0 when done or unknown
	Resumed  bool
	Finished bool
}

// Remaining is how many messages of the range are left.
func (p Progress) Remaining() uint64 {
	if p.Done >= p.Plan.Total {
		return 0
	}
	return p.Plan.Total - p.Done
}

// ErrStopped is returned when the context ended before the range was done; running
// the same replay again resumes it.
var ErrStopped = errors.New("replay stopped before the end of its range")

// Run replays the plan, one pass per urgency band, and returns the last progress.
// It returns ErrStopped when ctx ends first (the replay's consumer is kept for a
// resume).
func Run(ctx context.Context, js jetstream.JetStream, stream string, plan Plan, o Options) (Progress, error) {
	if o.Deps.Stats == nil {
		o.Deps.Stats = &consumer.Stats{} // one count over the passes
	}
	r := &run{js: js, stream: stream, plan: plan, o: o, begin: time.Now()}
	passes := plan.passesLeft()
	last := Progress{Plan: plan, Done: plan.Total, Resumed: plan.Resumed}
	var cons jetstream.Consumer
	if len(passes) > 0 {
		var err error
		if cons, err = r.open(ctx, passes[0]); err != nil {
			return Progress{}, r.stopped(ctx, err)
		}
	}
	for _, done := range plan.found {
		if len(passes) == 0 || done != passes[0] { // a finished pass whose consumer was not deleted
			r.remove(ctx, done)
		}
	}
	for i, pass := range passes {
		var err error
		if last, err = r.pass(ctx, cons, pass); err != nil {
			return last, err
		}
		if i+1 < len(passes) {
			// The next pass's consumer first: a resume finds the pass to go on with.
			if cons, err = r.open(ctx, passes[i+1]); err != nil {
				return last, r.stopped(ctx, err)
			}
		}
		r.remove(ctx, pass)
	}
	last.Finished, last.ETA = true, 0
	if o.Progress != nil {
		o.Progress(last)
	}
	return last, nil
}

// run is one replay's passes.
type run struct {
	js     jetstream.JetStream
	stream string
	plan   Plan
	o      Options
	begin  time.Time
}

// stopped is ErrStopped when ctx ended, err otherwise.
func (r *run) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ErrStopped
	}
	return err
}

// remove deletes the consumer of a finished pass. One left behind would make the
// next replay of the same range a resume of this one.
func (r *run) remove(ctx context.Context, pass Pass) {
	name := pass.durable(r.plan)
	if err := r.js.DeleteConsumer(context.WithoutCancel(ctx), r.stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.o.Deps.Log.Warn().Err(err).Str("consumer", name).Msg("could not delete the replay's consumer of a finished pass; delete it before replaying the same range again")
	}
}

// pass re-sends what pass takes of the range through the replay consumer cons, with
// progress, until it took all of it (or ctx ended: ErrStopped).
func (r *run) pass(ctx context.Context, cons jetstream.Consumer, pass Pass) (Progress, error) {
	o := r.o
	o.Deps.Consumer = cons
	o.Consumer.Replay = &consumer.Replay{Since: r.plan.started, LastSeq: r.plan.LastSeq, Present: o.Present}
	if pass != InStreamOrder {
		o.Consumer.Replay.InPass = func(seq uint64) bool { return r.plan.Order.Pass(seq) == pass }
	}
	c, err := consumer.New(o.Deps, o.Consumer)
	if err != nil {
		return Progress{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	every := o.ProgressEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := Progress{Plan: r.plan, Pass: pass, Resumed: r.plan.Resumed}
	for {
		m, err := r.measure(ctx, cons, pass)
		if err == nil {
			m.Stats, m.Elapsed = c.Stats(), time.Since(r.begin)
			m.ETA = eta(ctx, m.Progress, o.Budget)
			last = m.Progress
		}
		if err == nil && m.passDone {
			stop()
			<-done
			last.Stats = c.Stats()
			return last, nil
		}
		if o.Progress != nil && err == nil {
			o.Progress(last)
		}
		select {
		case <-ctx.Done():
			<-done
			last.Stats = c.Stats()
			return last, ErrStopped
		case <-tick.C:
		}
	}
}

// open finds the consumer of pass (a resume) or creates it, recording the plan in
// its metadata.
func (r *run) open(ctx context.Context, pass Pass) (jetstream.Consumer, error) {
	name := pass.durable(r.plan)
	cons, err := r.js.Consumer(ctx, r.stream, name)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("replay consumer %s: %w", name, err)
	}
	ackWait := r.o.AckWait
	if ackWait <= 0 {
		ackWait = 2 * time.Minute
	}
	p := r.plan
	first, _ := p.Order.Bounds(pass) // the messages before are another pass's
	cons, err = r.js.CreateConsumer(ctx, r.stream, jetstream.ConsumerConfig{
		Durable:           name,
		Description:       fmt.Sprintf("ionixsnow replay of sequences %d-%d, %s", p.FirstSeq, p.LastSeq, pass.description()),
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(first, p.FirstSeq),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           ackWait,
		FilterSubjects:    p.FilterSubjects,
		InactiveThreshold: durableIdle,
		Metadata: map[string]string{
			metaLastSeq:   strconv.FormatUint(p.LastSeq, 10),
			metaStartedAt: p.started.Format(time.RFC3339Nano),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create replay consumer %s: %w", name, err)
	}
	return cons, nil
}

// measure counts what is done: the passes before pass, and of pass's messages those
// the replay consumer's ack floor passed. The pass is done once the floor passed its
// last message (everything of it before is acknowledged: sent or dead-lettered), or
// the consumer has nothing left at all.
func (r *run) measure(ctx context.Context, cons jetstream.Consumer, pass Pass) (progress, error) {
	plan := r.plan
	info, err := cons.Info(ctx)
	if err != nil {
		return progress{}, err
	}
	// A pass whose last message was deleted since the plan, with nothing after it,
	// has nothing left to deliver or to be acknowledged.
	_, last := plan.Order.Bounds(pass)
	done := info.AckFloor.Stream >= last || info.NumPending == 0 && info.NumAckPending == 0
	p := progress{Progress: Progress{Plan: plan, Pass: pass, Resumed: plan.Resumed}, passDone: done}
	if pass != InStreamOrder {
		for b := range pass {
			p.Done += plan.Order.Count(b)
		}
	}
	p.Done += plan.Order.Through(pass, info.AckFloor.Stream)
	p.Done = min(p.Done, plan.Total)
	return p, nil
}

// progress is a measure: the progress, and whether the pass is done.
type progress struct {
	Progress
	passDone bool
}

// eta estimates the time to finish: the longer of the pace so far and what the
// global cap allows (sends beyond the budget's free slots go at limit per window).
func eta(ctx context.Context, p Progress, budget *budget.KV) time.Duration {
	left := p.Remaining()
	if left == 0 {
		return 0
	}
	var byPace, byCap time.Duration
	if handled := p.Stats.Received; handled > 0 && p.Elapsed > 0 {
		byPace = time.Duration(float64(p.Elapsed) * float64(left) / float64(handled))
	}
	if budget != nil {
		if st, err := budget.State(ctx); err == nil && st.Limit > 0 {
			over := int64(left) - int64(st.Remaining())
			if over > 0 {
				byCap = time.Duration(float64(over) / float64(st.Limit) * st.WindowSeconds * float64(time.Second))
			}
		}
	}
	return max(byPace, byCap)
}
