package consumer

import (
	"time"

	"github.com/ionix/ionixsnow/ledger"
)

// phase is where an item stands in the ticket ledger, as the decision sees it.
type phase uint8

const (
	// phaseUnread: the ledger was not read (the decision did not need it yet).
	phaseUnread phase = iota
	// phaseUnavailable: the read failed.
	phaseUnavailable
	// phaseNone: no entry; the item never had an incident from us.
	phaseNone
	// phaseClosedUnticketed: a closing recorded before the item had an incident
	// (no post was made; the entry names no incident).
	phaseClosedUnticketed
	// phaseOpen: ticketed; the last post set no state (a create or an update).
	phaseOpen
	// phaseResolved: ticketed; the last post resolved the incident (a closing).
	phaseResolved
	// phaseReopened: ticketed; the last post reopened it (In Progress).
	phaseReopened
)

var phaseNames = [...]string{"unread", "unavailable", "none", "closing recorded without incident", "open", "resolved", "reopened"}

func (p phase) String() string { return phaseNames[p] }

// itemState is the explicit state of an item, derived from its ledger entry
// (stateOf): its phase and, when there is an entry, the event it records — the stream
// instance, sequence and fingerprint — and when it was written.
type itemState struct {
	phase       phase
	stream      string
	seq         uint64
	fingerprint string
	sentAt      time.Time
}

// stateOf derives the item's state from its ledger entry (found false: none).
func stateOf(t ledger.Ticket, found bool) itemState {
	if !found {
		return itemState{phase: phaseNone}
	}
	return itemState{phase: phaseOf(t), stream: t.Stream, seq: t.StreamSeq, fingerprint: t.Fingerprint, sentAt: t.SentAt}
}

// phaseOf is the ledger entry's phase. ledger.Ticket.Status mixes ServiceNow's import status
// ("inserted", "updated", "ignored") with ours (resolved, reopened); an entry that names
// no incident is a closing recorded without one.
func phaseOf(t ledger.Ticket) phase {
	switch {
	case !t.Ticketed():
		return phaseClosedUnticketed
	case t.Status == ledger.StatusResolved:
		return phaseResolved
	case t.Status == ledger.StatusReopened:
		return phaseReopened
	}
	return phaseOpen
}

// found reports whether the ledger holds an entry for the item.
func (s itemState) found() bool { return s.phase >= phaseClosedUnticketed }

// ticketed reports whether the entry names an incident.
func (s itemState) ticketed() bool { return s.phase >= phaseOpen }

// position is where an event stands relative to the entry of its item.
type position uint8

const (
	posNoEntry     position = iota
	posEntryOlder           // the entry records an earlier event (or one of unknown sequence)
	posSameEvent            // the entry records this very event (its original, for a copy)
	posEntryNewer           // the entry records a later event: this one is superseded
	posOtherStream          // the entry counts in another stream instance: not comparable, not newer
)

var positionNames = [...]string{"no entry", "entry older", "same event", "entry newer", "other stream instance"}

func (p position) String() string { return positionNames[p] }

// positionOf places the event at relative to the item's entry. A sequence counts in
// its stream instance; an instance unknown on either side compares as the same.
func (s itemState) positionOf(at eventAt) position {
	switch {
	case !s.found():
		return posNoEntry
	case s.stream != "" && at.stream != "" && s.stream != at.stream:
		return posOtherStream
	case s.seq > at.seq:
		return posEntryNewer
	case s.seq == at.seq:
		return posSameEvent
	}
	return posEntryOlder
}

// eventAt dates an event: its sequence (for a copy, its original's) in the stream
// instance the message was fetched from.
type eventAt struct {
	seq    uint64
	stream string
}

// newer reports whether ticket t records a later event than at. An entry of another
// stream instance is never newer.
func newer(t ledger.Ticket, at eventAt) bool { return t.NewerThan(at.seq, at.stream) }
