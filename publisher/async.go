package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/ionix"
)

// Defaults of PublishAllOptions.
const (
	DefaultMaxInFlight      = 256
	DefaultAckTimeout       = 5 * time.Second
	DefaultRetries          = 4
	DefaultProgressInterval = 100 * time.Millisecond

	retryInitialWait = 250 * time.Millisecond
	retryMaxWait     = 4 * time.Second
)

// PublishAllOptions tunes PublishAll. A nil *PublishAllOptions, like every zero
// field, takes the defaults.
type PublishAllOptions struct {
	// MaxInFlight bounds the publishes sent and not yet acknowledged (default
	// DefaultMaxInFlight); 1 publishes one item at a time.
	MaxInFlight int
	// DryRun reads and validates the input and publishes nothing: the result
	// counts what would be published and the items repeated within the input.
	// A dry run needs no JetStream context (New(nil, prefix) will do).
	DryRun bool
	// AckTimeout bounds the wait for one acknowledgement, counted from the
	// send (default DefaultAckTimeout).
	AckTimeout time.Duration
	// Retries is how many times a publish that failed for a passing reason (no
	// responders during a leader election, no acknowledgement in time, a lost
	// connection, JetStream temporarily unavailable) is sent again, with
	// exponential backoff, before PublishAll gives up (default DefaultRetries;
	// negative: never).
	Retries int
	// MaxPayload, when positive, lowers the largest message (body and headers)
	// PublishAll sends below the connected server's max_payload; in a dry run it
	// replaces DefaultMaxPayload. A larger item is reported as invalid
	// (ErrTooLarge) and not sent.
	MaxPayload int64
	// Size is the size of the input in bytes when known (a regular file); it lets
	// Progress tell how far the run is.
	Size int64
	// Progress, when set, receives the counts so far every ProgressInterval
	// (default DefaultProgressInterval), and once more, with Done set, before
	// PublishAll returns. Calls never overlap.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Log receives a warning for each publish that is retried. The zero value
	// logs nothing.
	Log zerolog.Logger
}

func (o *PublishAllOptions) withDefaults() PublishAllOptions {
	var d PublishAllOptions
	if o != nil {
		d = *o
	}
	if d.MaxInFlight <= 0 {
		d.MaxInFlight = DefaultMaxInFlight
	}
	if d.AckTimeout <= 0 {
		d.AckTimeout = DefaultAckTimeout
	}
	if d.Retries == 0 {
		d.Retries = DefaultRetries
	}
	d.Retries = max(d.Retries, 0)
	if d.ProgressInterval <= 0 {
		d.ProgressInterval = DefaultProgressInterval
	}
	return d
}

// ErrNoJetStream is returned by PublishAll when a publisher made without a
// JetStream context is asked for more than a dry run.
var ErrNoJetStream = errors.New("publisher has no JetStream context (only a dry run works without one)")

// errAckTimeout is a publish that was not acknowledged within AckTimeout.
var errAckTimeout = errors.New("no acknowledgement in time")

// PublishAll reads action items from r (see ReadItems) and publishes each valid one
// as event ev, with up to opts.MaxInFlight publishes awaiting their
// acknowledgement at once. Invalid items — unreadable, not valid action items, or
// too large for one message (ErrTooLarge) — are reported in the result with
// their position and reason; the valid ones are published anyway. Versions of one item
// (the same id) reach the stream in input order: a version is sent only after the
// one before it was acknowledged.
//
// An error is returned only when the input became unreadable, the stream refused
// a publish, or a publish failed after its retries, or ctx ended; the result then
// counts what was acknowledged before. PublishAll never returns with an
// acknowledgement still awaited: every publish sent was acknowledged, refused, or
// timed out (AckTimeout) by then.
func (p *Publisher) PublishAll(ctx context.Context, r io.Reader, ev ionix.Event, opts *PublishAllOptions) (Result, error) {
	o := opts.withDefaults()
	if p.js == nil && !o.DryRun {
		return Result{}, ErrNoJetStream
	}
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	b := &batch{
		p:        p,
		ev:       ev,
		o:        o,
		in:       newCountingReader(r),
		stop:     stop,
		sem:      make(chan struct{}, o.MaxInFlight),
		queue:    make(chan *pending, o.MaxInFlight),
		inFlight: make(map[string]*pending),
		started:  time.Now(),
		limit:    p.MaxPayload(o.MaxPayload),
	}
	b.res.DryRun = o.DryRun
	if o.DryRun {
		b.seen = make(map[string]Position)
	}
	stopProgress := b.startProgress()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		b.collect(runCtx)
	}()

	readErr := ReadItems(b.in, func(raw Raw) error { return b.item(runCtx, raw) })

	close(b.queue)
	<-collected
	stopProgress()

	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.fatal != nil:
		return b.res, b.fatal
	case errors.Is(readErr, errStopped):
		return b.res, ctx.Err()
	default:
		return b.res, readErr
	}
}

// errStopped ends reading once the run was stopped (ctx ended or a publish failed).
var errStopped = errors.New("stopped")

// batch is one PublishAll run. The reading goroutine sends; the collector awaits
// the acknowledgements in send order and frees the in-flight slots.
type batch struct {
	p       *Publisher
	ev      ionix.Event
	o       PublishAllOptions
	in      *countingReader
	stop    context.CancelCauseFunc
	sem     chan struct{} // one token per publish awaiting its acknowledgement
	queue   chan *pending // publishes in send order, for the collector
	started time.Time
	limit   int64 // the largest message sent, body and headers

	mu       sync.Mutex
	res      Result
	read     int
	line     int
	fatal    error
	inFlight map[string]*pending // by item id: the version last sent
	seen     map[string]Position // dry run: message id -> where it appeared first
}

// pending is one publish awaiting its acknowledgement.
type pending struct {
	pos    Position
	itemID string
	msg    *nats.Msg
	fut    jetstream.PubAckFuture
	err    error // the send itself failed
	sentAt time.Time
	done   chan struct{} // closed once acknowledged or given up
}

// item handles one input item on the reading goroutine.
func (b *batch) item(ctx context.Context, raw Raw) error {
	if ctx.Err() != nil {
		return errStopped
	}
	b.mu.Lock()
	b.read++
	b.line = raw.Pos.Line
	b.mu.Unlock()
	if raw.Err != nil {
		b.invalid(Problem{Pos: raw.Pos, Err: raw.Err})
		return nil
	}
	item, err := ionix.Decode(raw.Data)
	if err != nil {
		b.invalid(Problem{Pos: raw.Pos, ID: item.ID, Err: err})
		return nil
	}
	msg := b.p.message(raw.Data, item, b.ev, ionix.MsgID(item, b.ev))
	msgID := msg.Header.Get(jetstream.MsgIDHeader)
	if err := fits(msg, b.limit); err != nil {
		b.invalid(Problem{Pos: raw.Pos, ID: item.ID, Err: err})
		return nil
	}
	if b.o.DryRun {
		b.dryRun(raw.Pos, item.ID, msgID)
		return nil
	}

	// An earlier version of the same item still in flight is acknowledged first,
	// so that a retry cannot put it behind this one.
	b.mu.Lock()
	prev := b.inFlight[item.ID]
	b.mu.Unlock()
	if prev != nil {
		select {
		case <-prev.done:
		case <-ctx.Done():
			return errStopped
		}
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return errStopped
	}
	if ctx.Err() != nil {
		<-b.sem
		return errStopped
	}
	pd := &pending{
		pos:    raw.Pos,
		itemID: item.ID,
		msg:    msg,
		done:   make(chan struct{}),
	}
	b.send(pd)
	b.mu.Lock()
	b.inFlight[item.ID] = pd
	b.mu.Unlock()
	b.queue <- pd // never blocks: the queue holds as many as there are tokens
	return nil
}

func (b *batch) invalid(p Problem) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.res.Invalid++
	b.res.Problems = append(b.res.Problems, p)
}

func (b *batch) dryRun(pos Position, id, msgID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if first, ok := b.seen[msgID]; ok {
		b.res.Repeated++
		b.res.Repeats = append(b.res.Repeats, Repeat{Pos: pos, ID: id, First: first})
		return
	}
	b.seen[msgID] = pos
	b.res.Published++
}

// send sends pd without waiting for its acknowledgement.
func (b *batch) send(pd *pending) {
	pd.fut, pd.err = b.p.js.PublishMsgAsync(pd.msg) // the message carries its id
	pd.sentAt = time.Now()
}

// collect awaits the publishes in send order until the queue is closed.
func (b *batch) collect(ctx context.Context) {
	for pd := range b.queue {
		dup, err := b.await(ctx, pd)
		b.mu.Lock()
		switch {
		case err != nil:
			b.res.Unconfirmed++
			if b.fatal == nil {
				b.fatal = fmt.Errorf("%s (id %q): %w", pd.pos, pd.itemID, err)
				b.stop(b.fatal)
			}
		case dup:
			b.res.Duplicates++
		default:
			b.res.Published++
		}
		if b.inFlight[pd.itemID] == pd {
			delete(b.inFlight, pd.itemID)
		}
		b.mu.Unlock()
		close(pd.done)
		<-b.sem
	}
}

// await waits for the acknowledgement of pd, sending it again after a passing
// failure until the retries run out or ctx ends. A publish already sent is always
// awaited (up to AckTimeout), even after ctx ended.
func (b *batch) await(ctx context.Context, pd *pending) (duplicate bool, err error) {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(retryInitialWait),
		backoff.WithMaxInterval(retryMaxWait),
		backoff.WithMaxElapsedTime(0),
	)
	for attempt := 0; ; attempt++ {
		ack, err := b.ack(pd)
		if err == nil {
			return ack.Duplicate, nil
		}
		if !retryable(err) || attempt >= b.o.Retries || ctx.Err() != nil {
			if attempt > 0 {
				return false, fmt.Errorf("publish failed %d times: %w", attempt+1, err)
			}
			return false, fmt.Errorf("publish: %w", err)
		}
		wait := bo.NextBackOff()
		b.o.Log.Warn().Err(err).Str("item", pd.pos.String()).Str("id", ionix.ShortID(pd.itemID)).
			Int("attempt", attempt+1).Dur("retry_in", wait).Msg("publish not acknowledged; retrying")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("publish: %w (not retried: %w)", err, context.Cause(ctx))
		}
		b.send(pd)
	}
}

// ack waits for the outcome of the last send of pd.
func (b *batch) ack(pd *pending) (*jetstream.PubAck, error) {
	if pd.err != nil {
		return nil, pd.err
	}
	t := time.NewTimer(time.Until(pd.sentAt.Add(b.o.AckTimeout)))
	defer t.Stop()
	select {
	case ack := <-pd.fut.Ok():
		return ack, nil
	case err := <-pd.fut.Err():
		return nil, err
	case <-t.C:
		return nil, fmt.Errorf("%w (%s)", errAckTimeout, b.o.AckTimeout)
	}
}

// retryable tells a publish failure that may pass (no responders while a stream
// leader is elected, no acknowledgement in time, a lost connection, JetStream
// temporarily unavailable) from a refusal. Publishing again is safe either way:
// the stream drops a message id it already holds.
func retryable(err error) bool {
	for _, e := range []error{
		jetstream.ErrNoStreamResponse, nats.ErrNoResponders,
		errAckTimeout, jetstream.ErrAsyncPublishTimeout, nats.ErrTimeout, context.DeadlineExceeded,
		nats.ErrDisconnected, nats.ErrReconnectBufExceeded, jetstream.ErrTooManyStalledMsgs,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}
