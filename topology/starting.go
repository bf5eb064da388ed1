package topology

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Error codes the JetStream API answers with while a server or cluster is still starting.
const (
	errCodeTemporarilyUnavailable jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
	errCodeNoSuitablePeers        jetstream.ErrorCode = 10005 // "no suitable peers for placement, …"
)

// Starting reports whether err, from Ensure or one of the narrower Ensure functions,
// means JetStream is not ready yet rather than that the request is wrong: JetStream not
// enabled yet, a request timing out, the meta group without a leader, or a cluster whose
// leader has not yet heard from its peers ("peer offline"). A caller starting beside a
// forming cluster retries these for a while; anything else is reported at once.
func Starting(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeTemporarilyUnavailable:
		return true
	case errCodeNoSuitablePeers:
		// The same code says "insufficient resources" or "replicas > cluster size":
		// only an offline peer is a matter of waiting.
		return strings.Contains(apiErr.Description, "peer offline")
	}
	return false
}
