package consumer

import "github.com/ionix/ionixsnow/ledger"

// legacyDecision is the decision handle.go made before decide existed (commit
// 1740f67: handle, handleClosed, closedWithoutIncident's entry, postedAlready,
// superseded, present, reopens), transcribed over a row with its conditions and order
// kept, the effects replaced by the name of the action. It is the reference
// TestDecisionKeepsTheBehaviourBeforeIt holds decide to.
func legacyDecision(r row) string {
	f, m := r.facts(), r.modeOf()
	t, found := r.ticket()
	unavailable := r.state == phaseUnavailable
	if f.kind == evNoMetadata {
		return "terminate"
	}
	// beyondRange
	if m.replay && m.lastSeq != 0 && f.seq > m.lastSeq {
		return "ack outside the pass"
	}
	if f.kind == evUndecodable || f.kind == evUnknown {
		return "dead-letter"
	}
	pass := f.filteredBy == ""
	if !pass && f.kind == evOpened && !(m.resolveOnClose && f.reopenMarked) {
		return "ack filtered"
	}
	if r.turn == turnCancelled {
		return "return unsent"
	}
	at := f.at
	requeued := f.copy == copyRequeued
	replayed := func(t ledger.Ticket) bool { return m.replay && t.SentAt.After(m.since) }
	records := func(t ledger.Ticket) bool { return t.SameStream(at.stream) && t.StreamSeq == at.seq }
	present := func() (string, bool) {
		if !m.missingOnly {
			return "", false
		}
		switch r.presence {
		case presenceUnavailable:
			return "retry later", true
		case presencePresent:
			return "ack present", true
		}
		return "", false
	}
	if f.kind == evClosed { // handleClosed
		if !m.resolveOnClose {
			return "ack closed ignored"
		}
		if unavailable {
			return "retry later"
		}
		if found && newer(t, at) {
			return "ack superseded"
		}
		if (!found || !t.Ticketed()) && !requeued {
			return "record the closing"
		}
		if t.Status == ledger.StatusResolved && !requeued && records(t) && !(m.replay && !replayed(t)) {
			return "ack duplicate"
		}
		if a, done := present(); done {
			return a
		}
		return "post resolve"
	}
	fingerprint := f.fingerprint
	read := false
	prefix := ""
	if f.later || r.turn == turnWaited || requeued || f.copy == copyRedriven || m.replay || m.resolveOnClose {
		if unavailable {
			return "retry later"
		}
		read = true
		if !pass && !(found && t.Ticketed()) {
			return "ack filtered"
		}
		if m.resolveOnClose && found && !t.Ticketed() && newer(t, at) && f.later {
			prefix = "requeue the closing, "
		}
		if found && (!m.replay || t.Fingerprint != fingerprint || !t.Ticketed()) && newer(t, at) {
			return prefix + "ack superseded"
		}
		if !requeued && found && t.Fingerprint == fingerprint && records(t) && !(m.replay && !replayed(t)) {
			return prefix + "ack duplicate"
		}
	}
	if a, done := present(); done {
		return prefix + a
	}
	// reopens
	if m.resolveOnClose && read && found && t.Ticketed() && !newer(t, at) && f.reopenMarked {
		return prefix + "post reopen"
	}
	// The same record either way; named by what the ledger read showed.
	switch {
	case !read:
		return prefix + "post, ledger unread"
	case found && t.Ticketed():
		return prefix + "post update"
	}
	return prefix + "post create"
}
