package consumer

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/topology"
)

// reopenMarked reports whether the message is marked as a reopening: by the poller
// (topology.HeaderReopened), or as the requeued copy of an event that must reopen
// (topology.HeaderRequeuedReopen). Whether the mark reopens the incident is decide's to say
// (with resolve_on_close, for an item with an incident whose entry is not newer).
func reopenMarked(msg jetstream.Msg) bool {
	h := msg.Headers()
	return h.Get(topology.HeaderReopened) == "true" ||
		h.Get(topology.HeaderRequeuedFrom) != "" && h.Get(topology.HeaderRequeuedReopen) == "true"
}
