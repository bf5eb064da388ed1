package consumer

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stream instance. A ledger entry records the stream sequence of the event it
// posted, and which instance of the stream that sequence counts in (its creation
// time): a stream deleted and created again counts from 1, and its events must not be
// compared with the entries of the one before. The instance is read once at start and
// read again only when something says it may have changed, not before every pull:
//
//   - a pull failed (a deleted stream takes its durable consumer with it);
//   - a delivery's consumer sequence went backwards (a consumer created again counts
//     its deliveries from 1): checked on every message, before it is queued;
//   - the server's stream-created advisory for the stream arrived;
//   - and, as a backstop for an advisory missed during a disconnect, streamCheckEvery
//     has passed since the last read.

// streamCheckEvery is the backstop interval between two reads of the stream instance.
const streamCheckEvery = 10 * time.Second

// streamID is the stream instance the consumer's messages come from ("" when unknown).
func (c *Consumer) streamID() string {
	if p := c.stream.Load(); p != nil {
		return *p
	}
	return ""
}

func (c *Consumer) setStream(id string) { c.stream.Store(&id) }

// checkStream reads the stream instance again if it may have changed. On an error
// the last value is kept and the next check tries again.
func (c *Consumer) checkStream(ctx context.Context) {
	if c.d.Stream == nil {
		return
	}
	if !c.streamStale.Load() && c.now().Sub(c.streamReadAt) < streamCheckEvery {
		return
	}
	c.streamStale.Store(false)
	info, err := c.d.Stream.Info(ctx)
	if id := instanceOf(info); err == nil && id != "" {
		c.setStream(id)
		c.streamReadAt = c.now()
		return
	}
	c.streamStale.Store(true)
}

// noteDelivery checks a fetched message's consumer sequence against the last one
// seen and reports the stream instance the message belongs to: read again first when
// the sequence went backwards. Called by the pull loop only, in fetch order.
func (c *Consumer) noteDelivery(ctx context.Context, msg jetstream.Msg, stream string) string {
	meta, err := msg.Metadata()
	if err != nil {
		return stream
	}
	seq := meta.Sequence.Consumer
	back := seq <= c.lastDelivery
	c.lastDelivery = seq
	if !back || c.d.Stream == nil {
		return stream
	}
	c.streamStale.Store(true)
	c.checkStream(ctx)
	return c.streamID()
}

// watchStream marks the stream instance stale when the server announces that the
// stream was created (again). It returns the function that stops watching.
func (c *Consumer) watchStream(ctx context.Context) (stop func()) {
	if c.d.Stream == nil {
		return func() {}
	}
	subject := "$JS.EVENT.ADVISORY.STREAM.CREATED." + c.d.Stream.CachedInfo().Config.Name
	sub, err := c.d.DeadLetters.js.Conn().Subscribe(subject, func(*nats.Msg) { c.streamStale.Store(true) })
	if err != nil {
		// The backstop read still catches it.
		c.d.Log.Warn().Err(err).Str("subject", subject).Msg("cannot watch for the stream being created again")
		return func() {}
	}
	return func() { _ = sub.Unsubscribe() }
}
