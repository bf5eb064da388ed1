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
	metaTotal     = "ionixsnow_replay_total"
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
	Plan     Plan
	Done     uint64            // messages of the range handled (sent, skipped or filtered)
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

// Run replays the plan and returns the last progress. It returns ErrStopped when ctx
// ends first (the replay's consumer is kept for a resume).
func Run(ctx context.Context, js jetstream.JetStream, stream string, plan Plan, o Options) (Progress, error) {
	cons, resumed, started, err := ensureDurable(ctx, js, stream, &plan, o.AckWait)
	if err != nil {
		return Progress{}, err
	}
	o.Deps.Consumer = cons
	o.Consumer.Replay = &consumer.Replay{Since: started, LastSeq: plan.LastSeq, Present: o.Present}
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
	begin := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last Progress
	for {
		p, err := measure(ctx, js, stream, cons, plan)
		if err == nil {
			p.Stats, p.Elapsed, p.Resumed = c.Stats(), time.Since(begin), resumed
			p.ETA = eta(ctx, p, o.Budget)
			last = p
			if p.Remaining() == 0 {
				last.Finished, last.ETA = true, 0
			}
		}
		if last.Finished {
			stop()
			<-done
			last.Stats = c.Stats()
			if o.Progress != nil {
				o.Progress(last)
			}
			_ = js.DeleteConsumer(context.WithoutCancel(ctx), stream, plan.Durable)
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

// ensureDurable finds the replay's consumer (a resume) or creates it, recording the
// plan in its metadata.
func ensureDurable(ctx context.Context, js jetstream.JetStream, stream string, plan *Plan, ackWait time.Duration) (jetstream.Consumer, bool, time.Time, error) {
	cons, err := js.Consumer(ctx, stream, plan.Durable)
	if err == nil {
		md := cons.CachedInfo().Config.Metadata
		if last, err := strconv.ParseUint(md[metaLastSeq], 10, 64); err == nil {
			plan.LastSeq = last
		}
		if total, err := strconv.ParseUint(md[metaTotal], 10, 64); err == nil {
			plan.Total = total
		}
		started, err := time.Parse(time.RFC3339Nano, md[metaStartedAt])
		if err != nil {
			started = cons.CachedInfo().Created
		}
		return cons, true, started, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, false, time.Time{}, fmt.Errorf("replay consumer %s: %w", plan.Durable, err)
	}
	started := time.Now().UTC()
	if ackWait <= 0 {
		ackWait = 2 * time.Minute
	}
	cons, err = js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:           plan.Durable,
		Description:       fmt.Sprintf("ionixsnow replay of sequences %d-%d", plan.FirstSeq, plan.LastSeq),
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       plan.FirstSeq,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           ackWait,
		FilterSubjects:    plan.FilterSubjects,
		InactiveThreshold: durableIdle,
		Metadata: map[string]string{
			metaLastSeq:   strconv.FormatUint(plan.LastSeq, 10),
			metaTotal:     strconv.FormatUint(plan.Total, 10),
			metaStartedAt: started.Format(time.RFC3339Nano),
		},
	})
	if err != nil {
		return nil, false, time.Time{}, fmt.Errorf("create replay consumer %s: %w", plan.Durable, err)
	}
	return cons, false, started, nil
}

// measure counts what is left of the range: the replay consumer's pending and
// unacknowledged messages, less those after the range.
func measure(ctx context.Context, js jetstream.JetStream, stream string, cons jetstream.Consumer, plan Plan) (Progress, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return Progress{}, err
	}
	beyond, err := countFrom(ctx, js, stream, plan.FilterSubjects, plan.LastSeq+1)
	if err != nil {
		return Progress{}, err
	}
	left := info.NumPending + uint64(info.NumAckPending)
	left = left - min(left, beyond)
	p := Progress{Plan: plan}
	if left < plan.Total {
		p.Done = plan.Total - left
	}
	if left == 0 {
		p.Done = plan.Total
	}
	return p, nil
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
