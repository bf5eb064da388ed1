package consumer

import (
	"time"

	"github.com/ionix/ionixsnow/ledger"
)

// The fate of every message is decided by one pure function, decide, from three
// inputs: the event's facts (eventFacts), the item's state in the ledger (itemState)
// and the consumer's mode (normal or replay, resolve_on_close on or off). Some facts
// cost a wait or a request — the item's turn, the ledger entry, ServiceNow's answer
// to "does the incident still exist?" — so decide asks for them one at a time, only
// when the answer matters, by returning a gathering action (actWaitTurn,
// actReadLedger, actAskPresence); the executor (handle.go) gathers the fact and asks
// again. A first delivery of a plain opened event without resolve_on_close is posted
// without a ledger read. docs/design.md shows the whole table; decide_test.go
// enumerates it.

// eventKind is what a message carries.
type eventKind uint8

const (
	evOpened      eventKind = iota
	evClosed                // a closing event
	evUndecodable           // a body that is not a valid action item
	evUnknown               // a valid item under an event that is neither opened nor closed
	evNoMetadata            // not a JetStream message
)

var eventKindNames = [...]string{"opened", "closed", "undecodable", "unknown event", "no metadata"}

func (k eventKind) String() string { return eventKindNames[k] }

// copyKind tells an original message from the copies the consumer publishes.
type copyKind uint8

const (
	copyNone     copyKind = iota
	copyRequeued          // the newest version put back because an older post may have landed after it
	copyRedriven          // a dead letter re-driven after a fix
)

var copyKindNames = [...]string{"original", "requeued", "re-driven"}

func (k copyKind) String() string { return copyKindNames[k] }

// turnFact is what waiting for the item's turn (posts of one item go one at a time,
// in stream order) found.
type turnFact uint8

const (
	turnPending   turnFact = iota // not waited for yet
	turnFirst                     // no other message of the item was ahead
	turnWaited                    // another message of the item went first
	turnCancelled                 // the consumer stopped while it waited
)

// presenceFact is ServiceNow's answer, in a missing-only replay, to whether the
// item's incident still exists.
type presenceFact uint8

const (
	presenceUnasked presenceFact = iota
	presenceAbsent
	presencePresent
	presenceUnavailable
)

// eventFacts are the facts about one delivered message that decide reads.
type eventFacts struct {
	kind eventKind
	// reopenMarked: the poller marked the opened event a reopening, or it is the
	// requeued copy of one that must reopen (reopenMarked in reopen.go).
	reopenMarked bool
	// filteredBy is why the filter leaves the item out ("urgency", "category"); ""
	// when it passes.
	filteredBy string
	copy       copyKind
	later      bool   // a redelivery (delivered more than once)
	seq        uint64 // the message's own stream sequence
	// at dates the event: its sequence (a copy's original's) in its stream instance.
	at          eventAt
	fingerprint string
	turn        turnFact
	presence    presenceFact
}

// mode is how the consumer runs, fixed when it is built (modeOf). A replay re-sends a
// range of the stream; its effect on a decision is read here and nowhere else.
type mode struct {
	resolveOnClose bool
	replay         bool
	since          time.Time             // when the replay began
	lastSeq        uint64                // the replay's last sequence; 0: no end
	inPass         func(seq uint64) bool // the replay's pass: whether it re-sends seq; nil: all
	missingOnly    bool                  // the replay re-sends only items whose incident is gone
	// overtaking: the express lane may have sent items ahead of the stream order,
	// so a first delivery may be ticketed already (or superseded).
	overtaking bool
}

func modeOf(o Options) mode {
	m := mode{resolveOnClose: o.ResolveOnClose}
	if r := o.Replay; r != nil {
		m.replay, m.since, m.lastSeq, m.missingOnly, m.inPass = true, r.Since, r.LastSeq, r.Present != nil, r.InPass
	}
	return m
}

// outsidePass reports whether the message at stream sequence seq is not the replay's
// to re-send in this pass: it lies after the range, or it goes in another band's pass.
func (m mode) outsidePass(seq uint64) bool {
	return m.replay && (m.lastSeq != 0 && seq > m.lastSeq || m.inPass != nil && !m.inPass(seq))
}

// replayed reports whether the entry was written by this replay (its own re-send).
func (m mode) replayed(s itemState) bool { return m.replay && s.sentAt.After(m.since) }

// actionKind is what the executor does with a message.
type actionKind uint8

const (
	actAck           actionKind = iota // acknowledge without a post, for ackReason
	actDeadLetter                      // store in the dead-letter stream, terminate
	actTerminate                       // terminate (nothing to store: not a JetStream message)
	actRetryLater                      // return for a later attempt (a fact could not be read)
	actReturnUnsent                    // return at once (the consumer is stopping)
	actRecordClosing                   // record the closing in the ledger, unposted
	actPost                            // post to ServiceNow (postKind)
	actWaitTurn                        // gather: wait for the item's turn
	actReadLedger                      // gather: read the item's ledger entry
	actAskPresence                     // gather: ask ServiceNow whether the incident exists
)

// ackReason is why a message is acknowledged without a post.
type ackReason uint8

const (
	ackFiltered      ackReason = iota + 1 // the filter leaves the item out
	ackSuperseded                         // the ledger records a later event of the item
	ackDuplicate                          // the ledger records this very event as posted
	ackPresent                            // missing-only replay: the incident exists
	ackOutsidePass                        // after the replay's range, or in another band's pass
	ackClosedIgnored                      // a closing while resolve_on_close is off
)

var ackReasonNames = [...]string{"", "filtered", "superseded", "duplicate", "present", "outside the pass", "closed ignored"}

// postKind is the record a post sends.
type postKind uint8

const (
	postCreate  postKind = iota + 1 // the item's fields, for an item the ledger names no incident of
	postUpdate                      // the item's fields, for an item the ledger names an incident of
	postUnread                      // the item's fields, the ledger not read (coalesce makes it an update if need be)
	postResolve                     // the closing record: state Resolved
	postReopen                      // the reopening record: state In Progress
)

var postKindNames = [...]string{"", "create", "update", "unread", "resolve", "reopen"}

// action is decide's answer.
type action struct {
	kind actionKind
	ack  ackReason
	post postKind
	// requeueClosing, with ackSuperseded: first put a copy of the closing the ledger
	// records back on the stream (an earlier attempt of this event may have made an
	// incident that closing never reached).
	requeueClosing bool
}

func (a action) String() string {
	switch a.kind {
	case actAck:
		if a.requeueClosing {
			return "requeue the closing, ack " + ackReasonNames[a.ack]
		}
		return "ack " + ackReasonNames[a.ack]
	case actPost:
		if a.post == postUnread {
			return "post, ledger unread"
		}
		return "post " + postKindNames[a.post]
	}
	return [...]string{"", "dead-letter", "terminate", "retry later", "return unsent", "record the closing",
		"", "wait for the turn", "read the ledger", "ask ServiceNow"}[a.kind]
}

// gathers reports whether the action asks for a fact rather than settling the message.
func (a action) gathers() bool { return a.kind >= actWaitTurn }

func ack(r ackReason) action         { return action{kind: actAck, ack: r} }
func post(k postKind) action         { return action{kind: actPost, post: k} }
func do(k actionKind) action         { return action{kind: k} }
func (a action) is(r ackReason) bool { return a.kind == actAck && a.ack == r }

// decide is the action for an event with facts f, for an item in state s, in mode m.
func decide(f eventFacts, s itemState, m mode) action {
	switch {
	case f.kind == evNoMetadata:
		return do(actTerminate)
	case m.outsidePass(f.seq):
		return ack(ackOutsidePass)
	case f.kind == evUndecodable || f.kind == evUnknown:
		return do(actDeadLetter)
	// The urgency filter applies to opened events only: an item's closing carries its
	// last published fields, which may have fallen below the threshold after its
	// incident was created. For the same reason a reopening (with resolve_on_close)
	// is filtered only once the ledger says its item has no incident.
	case f.kind == evOpened && f.filteredBy != "" && !(m.resolveOnClose && f.reopenMarked):
		return ack(ackFiltered)
	case f.turn == turnPending:
		return do(actWaitTurn)
	case f.turn == turnCancelled:
		return do(actReturnUnsent)
	case f.kind == evClosed:
		return decideClosing(f, s, m)
	}
	return decideOpened(f, s, m)
}

// needsLedger reports whether an opened event's decision reads the ledger. A first
// delivery cannot be in the ledger under this fingerprint unless the same item was
// published again after the duplicate window; coalesce makes that post an update.
// Only redeliveries, posts that waited for another post of the same item, copies,
// replays, (with resolve_on_close) possible reopenings, and deliveries while the
// express lane sends ahead pay for a lookup.
func needsLedger(f eventFacts, m mode) bool {
	return f.later || f.turn == turnWaited || f.copy != copyNone || m.replay || m.resolveOnClose || m.overtaking
}

func decideOpened(f eventFacts, s itemState, m mode) action {
	if !needsLedger(f, m) {
		return post(postUnread)
	}
	switch s.phase {
	case phaseUnread:
		return do(actReadLedger)
	case phaseUnavailable:
		return do(actRetryLater)
	}
	if f.filteredBy != "" && !s.ticketed() {
		return ack(ackFiltered) // a reopening of an item without an incident
	}
	pos := s.positionOf(f.at)
	// In a replay the same version is re-sent even behind a newer entry — not behind
	// a closing recorded before the item had an incident.
	if pos == posEntryNewer && (!m.replay || s.fingerprint != f.fingerprint || !s.ticketed()) {
		a := ack(ackSuperseded)
		// A closing was recorded while this event had no incident, but an earlier
		// attempt of this event may have created one (its answer or its ledger write
		// lost): the closing's copy resolves it, if it exists.
		a.requeueClosing = m.resolveOnClose && s.phase == phaseClosedUnticketed && f.later
		return a
	}
	// A redelivery of the message already posted is acknowledged (in a replay: only
	// once this replay re-sent it). Another message with the same fingerprint is a
	// new event and is posted. A requeued copy is posted whatever the ledger says:
	// that is its purpose.
	if f.copy != copyRequeued && pos == posSameEvent && s.fingerprint == f.fingerprint && (!m.replay || m.replayed(s)) {
		return ack(ackDuplicate)
	}
	if a, settled := askPresence(f, m); settled {
		return a
	}
	// A reopening reopens an incident whose entry is not newer than the event (a
	// replay re-sending an old reopening does not reopen on the way). The mark, not
	// the ledger's phase, decides: the closing before it may still be in flight on
	// another replica, or may have reached ServiceNow without reaching the ledger.
	if m.resolveOnClose && f.reopenMarked && s.ticketed() && pos != posEntryNewer {
		return post(postReopen)
	}
	if s.ticketed() {
		return post(postUpdate)
	}
	return post(postCreate)
}

// decideClosing: without resolve_on_close a closing is acknowledged. With it, the
// item's incident is resolved — unless this very event was posted already, or the
// item has no incident: then the closing is only recorded, so that an older opened
// event still to come (a failed post being retried, a post in flight on another
// replica) is superseded by it or requeues it.
func decideClosing(f eventFacts, s itemState, m mode) action {
	if !m.resolveOnClose {
		return ack(ackClosedIgnored)
	}
	switch s.phase {
	case phaseUnread:
		return do(actReadLedger)
	case phaseUnavailable:
		return do(actRetryLater)
	}
	pos := s.positionOf(f.at)
	switch {
	case pos == posEntryNewer:
		return ack(ackSuperseded)
	case !s.ticketed() && f.copy != copyRequeued:
		return do(actRecordClosing)
	case s.phase == phaseResolved && f.copy != copyRequeued && pos == posSameEvent && (!m.replay || m.replayed(s)):
		return ack(ackDuplicate)
	}
	if a, settled := askPresence(f, m); settled {
		return a
	}
	return post(postResolve)
}

// askPresence: a missing-only replay posts only items whose incident is gone.
func askPresence(f eventFacts, m mode) (action, bool) {
	if !m.missingOnly {
		return action{}, false
	}
	switch f.presence {
	case presenceUnasked:
		return do(actAskPresence), true
	case presenceUnavailable:
		return do(actRetryLater), true
	case presencePresent:
		return ack(ackPresent), true
	}
	return action{}, false
}

// The rules for what follows a post, and a closing recorded without one. A post is
// decided on what the ledger held before it went out; the ledger write after it tells
// what happened meanwhile (another replica's post of the same item), and the rules
// below put the newest version back on the stream (a requeue) when an older post may
// have reached ServiceNow after it.

// requeueOrder is a follow-up: a copy of the event at stream sequence seq goes to the
// end of the stream (reopen: its post must reopen the incident).
type requeueOrder struct {
	seq    uint64
	reopen bool
	why    string
}

// postOutcome is what the ledger write after an accepted post found.
type postOutcome struct {
	posted  ledger.Ticket // what the post recorded
	prev    ledger.Ticket // the entry before the write
	found   bool          // there was one
	written bool          // posted was written (not: prev records a later event)
	view    ledgerView    // what the ledger held when the post was decided
	started time.Time     // when the post went out
}

// afterPost is the follow-up of an accepted post by consumer instance instance, if any.
func afterPost(o postOutcome, instance string, m mode) (requeueOrder, bool) {
	switch {
	case !o.written && !harmlessAfter(o.posted, o.prev):
		// A newer version was posted meanwhile; ours may have reached ServiceNow
		// after it and put older values back.
		return requeueOrder{seq: o.prev.StreamSeq, reopen: m.resolveOnClose && copyReopens(o.posted, o.prev),
			why: "a newer version was posted while this one was in flight"}, true
	case o.written && o.found && o.prev.PostedBy != instance && o.view.changedTo(o.prev, o.started) && !harmlessAfter(o.prev, o.posted):
		// Another replica posted an older version after we decided (while ours was
		// in flight); it may have reached ServiceNow after ours.
		return requeueOrder{seq: o.posted.StreamSeq, reopen: m.resolveOnClose && copyReopens(o.prev, o.posted),
			why: "an older version was posted by another replica while this one was in flight"}, true
	}
	return requeueOrder{}, false
}

// afterRepost is the follow-up of the coalesce check's second post of the event at
// (posted as posted), by the entry cur the ledger holds after it (found: one).
func afterRepost(posted, cur ledger.Ticket, found bool, at eventAt, m mode) (requeueOrder, bool) {
	if !found || !newer(cur, at) || harmlessAfter(posted, cur) {
		return requeueOrder{}, false
	}
	return requeueOrder{seq: cur.StreamSeq, reopen: m.resolveOnClose && copyReopens(posted, cur),
		why: "a newer version was posted while the item was posted again to check coalesce"}, true
}

// postAfterRecording reports whether a closing must be posted after all once the
// ledger refused to record it without an incident: an incident turned up meanwhile
// (another replica's post recorded between our read and our write) for an event not
// newer than the closing at.
func postAfterRecording(prev ledger.Ticket, found, written bool, at eventAt) bool {
	return !written && found && prev.Ticketed() && !newer(prev, at)
}
