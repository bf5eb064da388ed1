package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
)

// recordClosing records the closing of an item the ledger knows no incident of
// (never ticketed, or its opened event not posted yet) and acknowledges it, so that an
// older opened event still to come is superseded by it or requeues it. If an incident
// turned up meanwhile (another replica's post recorded between our read and our
// write), its entry is left as it is and the closing is posted after all
// (postAfterRecording).
func (c *Consumer) recordClosing(ctx context.Context, d *delivery) (posted bool) {
	at := d.facts.at
	closing := ledger.Ticket{Fingerprint: d.facts.fingerprint, Status: ledger.StatusResolved, StreamSeq: at.seq, Stream: at.stream, SentAt: c.now().UTC(), PostedBy: c.instance}
	prev, found, written, err := c.d.Ledger.RecordUnless(ctx, d.item.ID, closing, ledger.Ticket.Ticketed)
	if err != nil {
		c.retryLater(ctx, d.log, d.msg, d.meta, fmt.Errorf("ticket ledger unavailable: %w", err))
		return false
	}
	if postAfterRecording(prev, found, written, at) {
		d.setEntry(prev, true)
		return c.postClosing(ctx, d)
	}
	c.stats.filteredClosed.Add(1)
	d.log.Info().Msg("closing event of an item without an incident: recorded, nothing posted")
	c.ack(ctx, d.log, d.msg)
	return false
}

// postClosing posts the record that resolves the item's incident; the ledger entry
// keeps the fingerprint of the version the incident was made from.
func (c *Consumer) postClosing(ctx context.Context, d *delivery) (posted bool) {
	closedAt := c.now()
	if ts, err := time.Parse(time.RFC3339, d.item.LastClosedAt); err == nil {
		closedAt = ts
	}
	record := mapping.ClosingRecord(d.item, c.o.Mapping, closedAt)
	return c.post(ctx, d, record, ledger.Ticket{Fingerprint: d.entry.Fingerprint, Status: ledger.StatusResolved})
}
