package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Replay makes a consumer re-send a range of the stream (`ionixsnow replay`): every
// message in the range is posted again, whatever the ledger says, except
//   - a message older than the version the ledger holds, with other content (the
//     incident should keep the newer version);
//   - a message this replay already re-sent (a redelivery within the replay);
//   - with Present set (--missing-only), an item whose incident still exists.
//
// Messages after LastSeq are outside the range: acknowledged and left alone.
type Replay struct {
	// Since is when the replay began; a ledger entry written after it is this
	// replay's own re-send. A resumed replay passes the time it first began.
	Since time.Time
	// LastSeq is the last stream sequence of the range; 0 means no end.
	LastSeq uint64
	// Present, when set, reports whether the item's incident still exists in
	// ServiceNow (a Table API read); only items whose incident is gone are re-sent.
	Present func(ctx context.Context, id string) (bool, error)
}

// beyondRange acknowledges a message after the replay's range and reports whether it did.
func (c *Consumer) beyondRange(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) bool {
	r := c.o.Replay
	if r == nil || r.LastSeq == 0 || meta.Sequence.Stream <= r.LastSeq {
		return false
	}
	c.ack(ctx, c.d.Log, msg)
	return true
}

// replayed reports whether the ticket is this replay's own re-send.
func (c *Consumer) replayed(t Ticket) bool {
	return c.o.Replay != nil && t.SentAt.After(c.o.Replay.Since)
}

// present acknowledges, without a post, an item whose incident still exists when the
// replay re-sends only missing incidents, and reports whether it did. ok is false
// when ServiceNow could not tell (the message was returned for a later attempt).
func (c *Consumer) present(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, id string) (present, ok bool) {
	r := c.o.Replay
	if r == nil || r.Present == nil {
		return false, true
	}
	found, err := r.Present(ctx, id)
	if err != nil {
		c.retryLater(ctx, log, msg, meta, fmt.Errorf("cannot tell whether the incident exists: %w", err))
		return false, false
	}
	if found {
		c.stats.present.Add(1)
		log.Debug().Msg("incident still exists; not re-sent")
		c.ack(ctx, log, msg)
	}
	return found, true
}
