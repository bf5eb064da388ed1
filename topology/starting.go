package topology

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Error codes the JetStream API answers with while a server, a cluster or a stream is
// still getting ready.
const (
	errCodeTemporarilyUnavailable jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
	errCodeNoSuitablePeers        jetstream.ErrorCode = 10005 // "no suitable peers for placement, …"
	// "consumer config replica count exceeds parent stream": Ensure gives the consumer
	// the stream's replica count, so this only means that the stream, just updated to
	// more replicas, is still scaling up.
	errCodeConsumerReplicasExceedStream jetstream.ErrorCode = 10126
)

// Starting reports whether err, from Ensure or one of the narrower Ensure functions,
// means JetStream is not ready yet rather than that the request is wrong: JetStream not
// enabled yet, a request timing out or left unanswered (ErrUnanswered), the meta group
// without a leader, a cluster whose leader has not yet heard from its peers ("peer
// offline"), or a stream still scaling up to a new replica count. A caller starting
// beside a forming cluster, or beside other replicas setting up the same topology,
// retries these for a while; anything else, the caller's own deadline or cancellation
// included, is reported at once.
func Starting(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnanswered) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeTemporarilyUnavailable, errCodeConsumerReplicasExceedStream:
		return true
	case errCodeNoSuitablePeers:
		// The same code says "insufficient resources" or "replicas > cluster size":
		// only an offline peer is a matter of waiting.
		return strings.Contains(apiErr.Description, "peer offline")
	}
	return false
}
