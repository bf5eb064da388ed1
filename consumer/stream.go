package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stream instance. A ledger entry records the stream sequence of the event it
// posted, and which instance of the stream that sequence counts in (its creation
// time): a stream deleted and created again counts from 1, and its events must not be
// compared with the entries of the one before. The instance is read once before the
// first pull and again only when something says it may have changed, not before
// every pull:
//
//   - a pull failed (a deleted stream takes its durable consumer with it);
//   - no pull was pending for longer than FetchWait (the loop waited for busy
//     workers or for the budget: a pull failure could not have told);
//   - a delivery's consumer sequence went backwards (a consumer created again counts
//     its deliveries from 1): checked on every message, before it is queued;
//   - the server's stream-created advisory for the stream arrived;
//   - and, as a backstop for an advisory missed during a disconnect, streamCheckEvery
//     has passed since the last read.
//
// While the instance may have changed and cannot be read, nothing is pulled, and
// messages already fetched are returned unqueued.

// streamCheckEvery is the backstop interval between two reads of the stream instance.
const streamCheckEvery = 10 * time.Second

// streamID is the stream instance the consumer's messages come from ("" when unknown).
func (c *Consumer) streamID() string {
	if p := c.stream.Load(); p != nil {
		return *p
	}
	return ""
}

func (c *Consumer) setStream(id string) {
	if old := c.stream.Swap(&id); old != nil && *old != "" && *old != id {
		c.x.streamChanged() // the new instance's sequences start at 1 again
	}
}

// errStreamUnknown: the stream instance may have changed and could not be read.
var errStreamUnknown = errors.New("the stream may have been created again and its instance cannot be read")

// checkStream reads the stream instance again if it may have changed. Pull loop only.
func (c *Consumer) checkStream(ctx context.Context) error {
	if c.d.Stream == nil {
		return nil
	}
	now := c.now()
	if !c.streamStale.Load() && now.Sub(c.streamReadAt) < streamCheckEvery && now.Sub(c.pullEndedAt) <= c.o.FetchWait {
		return nil
	}
	c.streamStale.Store(false)
	info, err := c.d.Stream.Info(ctx)
	if id := instanceOf(info); err == nil && id != "" {
		c.setStream(id)
		c.streamReadAt = now
		return nil
	}
	c.streamStale.Store(true)
	if err != nil {
		return fmt.Errorf("%w: %w", errStreamUnknown, err)
	}
	return errStreamUnknown
}

// noteDelivery checks a fetched message's consumer sequence against the last one
// seen and returns the message's metadata (nil when it has none; handle then says
// why) and the stream instance it belongs to, read again first when the sequence
// went backwards. Pull loop only, in fetch order.
func (c *Consumer) noteDelivery(ctx context.Context, msg jetstream.Msg, stream string) (*jetstream.MsgMetadata, string, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, stream, nil
	}
	c.pendingSeen.Store(meta.NumPending)
	c.x.noteFetched(meta.Sequence.Stream)
	seq := meta.Sequence.Consumer
	back := seq <= c.lastDelivery
	c.lastDelivery = seq
	if !back || c.d.Stream == nil {
		return meta, stream, nil
	}
	c.streamStale.Store(true)
	if err := c.checkStream(ctx); err != nil {
		return meta, stream, err
	}
	return meta, c.streamID(), nil
}

// watchStream marks the stream instance stale when the server announces that the
// stream was created (again). It returns the function that stops watching.
func (c *Consumer) watchStream(ctx context.Context) (stop func()) {
	if c.d.Stream == nil {
		return func() {}
	}
	subject := "$JS.EVENT.ADVISORY.STREAM.CREATED." + c.d.Stream.CachedInfo().Config.Name
	sub, err := c.conn().Subscribe(subject, func(*nats.Msg) { c.streamStale.Store(true) })
	if err != nil {
		// The backstop read still catches it.
		c.d.Log.Warn().Err(err).Str("subject", subject).Msg("cannot watch for the stream being created again")
		return func() {}
	}
	return func() { _ = sub.Unsubscribe() }
}
