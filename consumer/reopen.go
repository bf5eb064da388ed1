package consumer

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/topology"
)

// reopeningOfAnIncident reports whether, with resolve_on_close, the opened event is
// marked as a reopening and the item has an incident (a ledger read error counts as
// yes: the message goes on, and its ledger lookup retries it).
func (c *Consumer) reopeningOfAnIncident(ctx context.Context, msg jetstream.Msg, id string) bool {
	if !c.o.ResolveOnClose || !reopenMarked(msg) {
		return false
	}
	t, found, err := c.d.Ledger.Get(ctx, id)
	return err != nil || found && t.ticketed()
}

// reopenMarked reports whether the message is marked as a reopening: by the poller
// (topology.HeaderReopened), or as the requeued copy of an event that must reopen
// (HeaderRequeuedReopen).
func reopenMarked(msg jetstream.Msg) bool {
	h := msg.Headers()
	return h.Get(topology.HeaderReopened) == "true" ||
		h.Get(HeaderRequeuedFrom) != "" && h.Get(HeaderRequeuedReopen) == "true"
}

// reopens reports whether an opened event reopens its incident (with
// resolve_on_close): it is marked as a reopening (reopenMarked), and the item has an
// incident whose ledger entry is not newer than the event (a replay re-sending an
// old reopening does not reopen on the way). The mark, not the ledger's status,
// decides: the closing before it may still be in flight on another replica, or may
// have reached ServiceNow without reaching the ledger.
func (c *Consumer) reopens(msg jetstream.Msg, v ledgerView, seq uint64) bool {
	if !c.o.ResolveOnClose || !v.found || !v.t.ticketed() || v.t.newerThan(c.streamID(), seq) {
		return false
	}
	return reopenMarked(msg)
}
