package consumer

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ReasonMaxDeliver starts the reason of a message dead-lettered because its
// deliveries ran out (consumer.max_deliver).
const ReasonMaxDeliver = "no success"

// maxDeliveriesAdvisory is the part of the server's
// io.nats.jetstream.advisory.v1.max_deliver advisory the consumer reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// watchMaxDeliveries dead-letters the messages the server stops delivering because
// their last delivery timed out unacknowledged (a replica crashed or hung holding
// it): the server says so only in an advisory. A message that fails on its last
// delivery in this process is dead-lettered by retryLater; this covers the rest.
// Every replica watches; the dead letter's message id keeps one copy.
func (c *Consumer) watchMaxDeliveries(ctx context.Context) (stop func(), err error) {
	if c.o.MaxDeliver <= 0 || c.d.Stream == nil {
		return func() {}, nil
	}
	info := c.d.Consumer.CachedInfo()
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", info.Stream, info.Name)
	msgs := make(chan *nats.Msg, 64)
	sub, err := c.d.JetStream.Conn().ChanSubscribe(subject, msgs)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", subject, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				c.deadLetterExhausted(ctx, m.Data)
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { _ = sub.Unsubscribe(); <-done }, nil
}

func (c *Consumer) deadLetterExhausted(ctx context.Context, advisory []byte) {
	var a maxDeliveriesAdvisory
	if err := json.Unmarshal(advisory, &a); err != nil || a.StreamSeq == 0 {
		c.d.Log.Warn().Bytes("advisory", advisory).Msg("unreadable max-deliveries advisory")
		return
	}
	log := c.d.Log.With().Uint64("stream_seq", a.StreamSeq).Uint64("delivered", a.Deliveries).Logger()
	raw, err := c.d.Stream.GetMsg(ctx, a.StreamSeq)
	if err != nil {
		log.Error().Err(err).Msg("the server gave up on a message that cannot be read back; it is not in the dead-letter stream")
		return
	}
	reason := fmt.Sprintf("%s after %d deliveries (consumer.max_deliver): not acknowledged in time (consumer.ack_wait)", ReasonMaxDeliver, a.Deliveries)
	dup, err := c.d.DeadLetters.PutRaw(ctx, raw.Subject, raw.Header, raw.Data, a.StreamSeq, raw.Time, reason)
	if err != nil {
		log.Error().Err(err).Str("reason", reason).Msg("could not store the dead letter of a message the server gave up on")
		return
	}
	if !dup {
		c.stats.countDead(DeadMaxDeliver)
		log.Warn().Str("reason", reason).Str("kind", string(DeadMaxDeliver)).Msg("dead-lettered")
	}
}
