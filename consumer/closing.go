package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

// handleClosed acts on a closing event. Without ResolveOnClose it is acknowledged and
// counted. With it, the item's incident is re-posted as Resolved — unless this very
// event was posted already (a redelivery) or the item has no incident: then the
// closing is only recorded in the ledger, so that an older opened event still to come
// (a failed post being retried, a post in flight on another replica) is superseded or
// requeues this closing.
func (c *Consumer) handleClosed(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, item ionix.ActionItem, probe bool, at eventAt) bool {
	if !c.o.ResolveOnClose {
		c.stats.filteredClosed.Add(1)
		log.Debug().Msg("closing event ignored (resolve_on_close is off)")
		c.ack(ctx, log, msg)
		return false
	}
	t, found, err := c.d.Ledger.Get(ctx, item.ID)
	if err != nil {
		c.retryLater(ctx, log, msg, meta, fmt.Errorf("ticket ledger unavailable: %w", err))
		return false
	}
	if found && c.superseded(ctx, log, msg, t, at) {
		return false
	}
	requeued := headerSeq(msg, HeaderRequeuedFrom) != 0
	if (!found || !t.ticketed()) && !requeued {
		return c.closedWithoutIncident(ctx, log, msg, meta, item, at, probe)
	}
	if t.Status == StatusResolved && !requeued && c.postedAlready(ctx, log, msg, t, at) {
		return false
	}
	if present, ok := c.present(ctx, log, msg, meta, item.ID); present || !ok {
		return false
	}
	return c.postClosing(ctx, log, msg, meta, item, Ticket{Fingerprint: t.Fingerprint, Status: StatusResolved}, at, ledgerView{read: true, found: found, t: t}, probe)
}

// closedWithoutIncident records the closing of an item the ledger knows no incident
// of (never ticketed, or its opened event not posted yet) and acknowledges it. If an
// incident turned up meanwhile (another replica's post recorded between our read and
// our write), its entry is left as it is and the closing is posted after all.
func (c *Consumer) closedWithoutIncident(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, item ionix.ActionItem, at eventAt, probe bool) bool {
	closing := Ticket{Fingerprint: item.Fingerprint(), Status: StatusResolved, StreamSeq: at.seq, Stream: at.stream, SentAt: c.now().UTC(), PostedBy: c.instance}
	prev, found, written, err := c.d.Ledger.recordUnless(ctx, item.ID, closing, Ticket.ticketed)
	if err != nil {
		c.retryLater(ctx, log, msg, meta, fmt.Errorf("ticket ledger unavailable: %w", err))
		return false
	}
	if !written && found && prev.ticketed() && !prev.newerThan(at) {
		return c.postClosing(ctx, log, msg, meta, item, Ticket{Fingerprint: prev.Fingerprint, Status: StatusResolved}, at, ledgerView{read: true, found: true, t: prev}, probe)
	}
	c.stats.filteredClosed.Add(1)
	log.Info().Msg("closing event of an item without an incident: recorded, nothing posted")
	c.ack(ctx, log, msg)
	return false
}

// postClosing posts the record that resolves the item's incident.
func (c *Consumer) postClosing(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, item ionix.ActionItem, t Ticket, at eventAt, view ledgerView, probe bool) bool {
	closedAt := c.now()
	if ts, err := time.Parse(time.RFC3339, item.LastClosedAt); err == nil {
		closedAt = ts
	}
	record := mapping.ClosingRecord(item, c.o.Mapping, closedAt)
	return c.post(ctx, log, msg, meta, item.ID, record, t, at, view, probe)
}
