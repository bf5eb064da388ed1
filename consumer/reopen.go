package consumer

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/topology"
)

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
func (c *Consumer) reopens(msg jetstream.Msg, v ledgerView, at eventAt) bool {
	if !c.o.ResolveOnClose || !v.found || !v.t.ticketed() || v.t.newerThan(at) {
		return false
	}
	return reopenMarked(msg)
}
