package consumer

import "sync/atomic"

// Stats counts what the consumer did with the messages it received. It is safe for
// concurrent use; read it with Snapshot.
type Stats struct {
	received, created, updated, unchanged, resolved, duplicates, deadLettered, failed atomic.Int64
	superseded, requeued, present, reopened                                           atomic.Int64
	deadInvalid, deadRejected, deadMaxDeliver                                         atomic.Int64
	filteredCategory, filteredUrgency, filteredClosed                                 atomic.Int64
	otherTenant                                                                       atomic.Int64
}

// Snapshot is a copy of the counters at one moment.
type Snapshot struct {
	Received int64 `json:"received"`
	// Created and Updated count incidents ServiceNow inserted or updated (coalesce).
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
	// Unchanged counts re-posts ServiceNow ignored because the incident already held
	// the same values (coalesce).
	Unchanged int64 `json:"unchanged"`
	// Resolved counts closing events posted with state Resolved.
	Resolved int64 `json:"resolved"`
	// Reopened counts opened events that set a Resolved incident back to In
	// Progress (IONIX detected the finding again).
	Reopened int64 `json:"reopened"`
	// Duplicates counts redeliveries already in the ledger, acked without a post.
	Duplicates int64 `json:"duplicates"`
	// Superseded counts messages acked without a post because the ledger already
	// held a newer version of their item.
	Superseded int64 `json:"superseded"`
	// Requeued counts newest versions copied to the end of the stream because an
	// older version may have reached ServiceNow after them.
	Requeued int64 `json:"requeued"`
	// Present counts items a --missing-only replay did not re-send because their
	// incident still exists.
	Present int64 `json:"present,omitempty"`
	// Filtered counts items acked without a post, by reason.
	FilteredCategory int64 `json:"filtered_category"`
	FilteredUrgency  int64 `json:"filtered_urgency"`
	FilteredClosed   int64 `json:"filtered_closed"`
	// OtherTenant counts messages of another tenant's subjects (SPEC §9) that reached
	// this consumer (the single-tenant form reads the whole stream), acked unsent.
	OtherTenant  int64 `json:"other_tenant,omitempty"`
	DeadLettered int64 `json:"dead_lettered"`
	// DeadLettered by kind (see DeadKind).
	DeadInvalid    int64 `json:"dead_invalid,omitempty"`
	DeadRejected   int64 `json:"dead_rejected,omitempty"`
	DeadMaxDeliver int64 `json:"dead_max_deliver,omitempty"`
	// Failed counts attempts that failed for a reason that is not the item's fault;
	// the message was kept for a later attempt.
	Failed int64 `json:"failed"`
}

// Filtered is the number of items filtered for any reason.
func (s Snapshot) Filtered() int64 { return s.FilteredCategory + s.FilteredUrgency + s.FilteredClosed }

// Snapshot returns the current counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Received:         s.received.Load(),
		Created:          s.created.Load(),
		Updated:          s.updated.Load(),
		Unchanged:        s.unchanged.Load(),
		Resolved:         s.resolved.Load(),
		Reopened:         s.reopened.Load(),
		Duplicates:       s.duplicates.Load(),
		Superseded:       s.superseded.Load(),
		Requeued:         s.requeued.Load(),
		Present:          s.present.Load(),
		FilteredCategory: s.filteredCategory.Load(),
		FilteredUrgency:  s.filteredUrgency.Load(),
		OtherTenant:      s.otherTenant.Load(),
		FilteredClosed:   s.filteredClosed.Load(),
		DeadLettered:     s.deadLettered.Load(),
		DeadInvalid:      s.deadInvalid.Load(),
		DeadRejected:     s.deadRejected.Load(),
		DeadMaxDeliver:   s.deadMaxDeliver.Load(),
		Failed:           s.failed.Load(),
	}
}

// DeadKind says why a message was dead-lettered, for counting (the reason header
// says it in words).
type DeadKind string

// The kinds of dead letters.
const (
	DeadInvalid    DeadKind = "invalid"     // undecodable, invalid or unmappable item
	DeadRejected   DeadKind = "rejected"    // ServiceNow rejected the item
	DeadMaxDeliver DeadKind = "max_deliver" // its deliveries ran out
)

func (s *Stats) countDead(k DeadKind) {
	s.deadLettered.Add(1)
	switch k {
	case DeadInvalid:
		s.deadInvalid.Add(1)
	case DeadRejected:
		s.deadRejected.Add(1)
	case DeadMaxDeliver:
		s.deadMaxDeliver.Add(1)
	}
}
