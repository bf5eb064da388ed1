package topology

// Message headers of the wire contract (SPEC §2, §3).
const (
	// HeaderMsgID is the JetStream de-duplication id: <id>:<event>:<fingerprint>.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderEvent is the action-item event: opened or closed.
	HeaderEvent = "Ionix-Event"
	// HeaderReopened, "true" on an opened event, says that IONIX had closed the item
	// and detects it again (set by the poller); with resolve_on_close the consumer
	// reopens its incident.
	HeaderReopened = "Ionix-Reopened"

	// HeaderDLQReason says why a message was dead-lettered.
	HeaderDLQReason = "Ionix-Dlq-Reason"
	// HeaderDLQSubject is the subject the message had on the main stream.
	HeaderDLQSubject = "Ionix-Dlq-Subject"
	// HeaderDLQStreamSeq is the message's sequence on the main stream.
	HeaderDLQStreamSeq = "Ionix-Dlq-Stream-Seq"
	// HeaderDLQFailedAt is when the message was dead-lettered (RFC 3339).
	HeaderDLQFailedAt = "Ionix-Dlq-Failed-At"
	// HeaderDLQStoredAt is when the message was stored in the main stream (RFC 3339
	// with nanoseconds): with the stream's creation time it tells whether its
	// sequence counts in the stream as it is now.
	HeaderDLQStoredAt = "Ionix-Dlq-Stored-At"
)

// HeaderRequeuedFrom names the stream sequence a requeued copy was taken from.
const HeaderRequeuedFrom = "Ionix-Requeued-From"

// HeaderRequeuedReopen, "true" on a requeued copy of an opened event, says that its
// post must reopen the incident: the original was a reopening, or the post that may
// have landed after it was a resolving (an older closing).
const HeaderRequeuedReopen = "Ionix-Requeued-Reopen"
