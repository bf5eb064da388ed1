package status

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/backlog"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/topology"
)

// aheadSlack is how many pending messages of a band in a row the ledger must show
// unsent before sentAhead stops looking: the lane sends a band's oldest first, up to
// consumer.concurrency at once.
const aheadSlack = 16

// sentAhead is how many of a band's pending messages (seqs, in stream order) the
// express lane has posted already (SPEC §10): the ledger records their event, or a
// later one of their item. The durable consumer acknowledges them when it reaches
// them; until then they are above its ack floor but no longer backlog. The lane sends
// each band from its oldest, so the look stops after aheadSlack unsent in a row.
func sentAhead(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, names topology.Names, seqs []uint64) int {
	if len(seqs) == 0 {
		return 0
	}
	kv, err := js.KeyValue(ctx, names.TicketsBucket)
	if err != nil {
		return 0
	}
	tickets := ledger.NewForTenant(kv, names.LedgerPrefix())
	instance := ""
	if info := st.CachedInfo(); info != nil && !info.Created.IsZero() {
		instance = info.Created.UTC().Format(time.RFC3339Nano)
	}
	sent, unsent := 0, 0
	for _, seq := range seqs {
		if unsent >= aheadSlack {
			break
		}
		if posted(ctx, st, tickets, instance, seq) {
			sent++
			unsent = 0
		} else {
			unsent++
		}
	}
	return sent
}

// posted reports whether the ledger records the event at seq, or a later one of its
// item, as posted.
func posted(ctx context.Context, st jetstream.Stream, tickets *ledger.Tickets, instance string, seq uint64) bool {
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return false
	}
	item, err := ionix.Decode(m.Data)
	if err != nil {
		return false
	}
	t, found, err := tickets.Get(ctx, item.ID)
	return err == nil && found && t.SameStream(instance) && t.StreamSeq >= seq
}

// bandsSentAhead is sentAhead for the bands the lane sends ahead: High and Medium.
func bandsSentAhead(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, names topology.Names, ix *backlog.Index) (ahead [3]int) {
	for _, b := range []backlog.Band{backlog.High, backlog.Medium} {
		ahead[b] = sentAhead(ctx, js, st, names, ix.Pending(b))
	}
	return ahead
}
