package consumer

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ledger"
)

// The decision table. Every combination of decide's inputs (row) is generated; the
// expected action is the first rule of decisionRules whose conditions the row meets.
// A row no rule covers is a gap and fails the test, as does a rule no row reaches.
// The rules read top to bottom as the decision does: what the message says, the
// item's turn, closings, then opened events.
//
// A condition is key=value, with alternatives value|value; the keys are ruleKeys.
var decisionRules = []struct{ when, want string }{
	// What the message itself says.
	{"event=no-metadata", "terminate"},
	{"range=beyond", "ack outside the pass"},
	{"event=undecodable|unknown-event", "dead-letter"},
	// Urgency filters opened events; a reopening (resolve_on_close) only once the
	// ledger shows no incident (below). Closings are never filtered.
	{"event=opened filter=out", "ack filtered"},
	{"event=reopening filter=out roc=off", "ack filtered"},
	// The item's turn: the consumer stopped while waiting.
	{"turn=cancelled", "return unsent"},
	// Closings.
	{"event=closed roc=off", "ack closed ignored"},
	{"event=closed state=unavailable", "retry later"},
	{"event=closed pos=newer", "ack superseded"},
	{"event=closed ticketed=no copy=original|re-driven", "record the closing"},
	{"event=closed state=resolved pos=same copy=original|re-driven mode=normal", "ack duplicate"},
	{"event=closed state=resolved pos=same copy=original|re-driven by=replay", "ack duplicate"},
	{"event=closed presence=unavailable", "retry later"},
	{"event=closed presence=present", "ack present"},
	{"event=closed", "post resolve"},
	// Opened events. The fast path: no ledger read.
	{"roc=off mode=normal delivery=first copy=original turn=first", "post, ledger unread"},
	{"state=unavailable", "retry later"},
	{"event=reopening filter=out ticketed=no", "ack filtered"},
	// An older event behind the entry. A retried opened event behind a closing
	// recorded without an incident may have made one: the closing goes again.
	{"pos=newer state=closing-only roc=on delivery=later", "requeue the closing, ack superseded"},
	{"pos=newer mode=normal", "ack superseded"},
	// A replay re-sends the same version behind a newer entry of it.
	{"pos=newer version=other", "ack superseded"},
	{"pos=newer ticketed=no", "ack superseded"},
	// The event already posted (a replay: by this replay); a requeued copy goes again.
	{"pos=same version=same copy=original|re-driven mode=normal", "ack duplicate"},
	{"pos=same version=same copy=original|re-driven by=replay", "ack duplicate"},
	{"presence=unavailable", "retry later"},
	{"presence=present", "ack present"},
	{"event=reopening roc=on ticketed=yes pos=older|same|other-stream", "post reopen"},
	{"ticketed=yes", "post update"},
	{"ticketed=no", "post create"},
}

// row is one combination of decide's inputs.
type row struct {
	mode     string // normal, replay, missing-only
	roc      bool
	event    string // opened, reopening, closed, undecodable, unknown-event, no-metadata
	filtered bool
	copy     copyKind
	later    bool
	turn     turnFact
	state    phase // the ledger's truth (never phaseUnread)
	pos      position
	sameFP   bool
	byReplay bool // the entry was written by this replay
	beyond   bool // after the replay's range
	presence presenceFact
	// overtaking: the express lane sends items ahead of the stream order (the table
	// enumerates rows without it; TestDecisionCases has rows with it).
	overtaking bool
}

// The event of every row: sequence 10 of stream instance S2 (its original's, for a
// copy, published at 50); the replay began at since.
var (
	rowAt     = eventAt{seq: 10, stream: "S2"}
	rowSince  = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	positions = []position{posEntryOlder, posSameEvent, posEntryNewer, posOtherStream}
)

// rows generates the rows of one mode: the whole cross product of the other inputs; a
// dimension that does not exist in the mode (the range, the entry's author and
// ServiceNow's answer outside a replay) has one value.
func rows(m string, roc bool) []row {
	var out []row
	replay := m != "normal"
	for _, ev := range []string{"opened", "reopening", "closed", "undecodable", "unknown-event", "no-metadata"} {
		for _, filtered := range []bool{false, true} {
			for _, cp := range []copyKind{copyNone, copyRequeued, copyRedriven} {
				for _, later := range []bool{false, true} {
					for _, turn := range []turnFact{turnFirst, turnWaited, turnCancelled} {
						for _, st := range states(replay) {
							for _, beyond := range values(replay) {
								presences := []presenceFact{presenceUnasked}
								if m == "missing-only" {
									presences = []presenceFact{presenceAbsent, presencePresent, presenceUnavailable}
								}
								for _, p := range presences {
									r := st
									r.mode, r.roc, r.event, r.filtered, r.copy, r.later, r.turn, r.beyond, r.presence = m, roc, ev, filtered, cp, later, turn, beyond, p
									out = append(out, r)
								}
							}
						}
					}
				}
			}
		}
	}
	return out
}

// states are the ledger states of a row: none, unavailable, and every phase with an
// entry at every position, of the same version or another (in a replay: written by
// it or before it).
func states(replay bool) []row {
	out := []row{{state: phaseNone}, {state: phaseUnavailable}}
	for _, ph := range []phase{phaseClosedUnticketed, phaseOpen, phaseResolved, phaseReopened} {
		for _, pos := range positions {
			for _, same := range []bool{true, false} {
				for _, by := range values(replay) {
					out = append(out, row{state: ph, pos: pos, sameFP: same, byReplay: by})
				}
			}
		}
	}
	return out
}

// values is {false, true} for a dimension that exists, {false} for one that does not.
func values(exists bool) []bool {
	if exists {
		return []bool{false, true}
	}
	return []bool{false}
}

func (r row) modeOf() mode {
	m := mode{resolveOnClose: r.roc, replay: r.mode != "normal", missingOnly: r.mode == "missing-only", overtaking: r.overtaking}
	if m.replay {
		m.since, m.lastSeq = rowSince, 100
		if r.beyond {
			m.lastSeq = 5
		}
	}
	return m
}

// facts are the row's event facts before anything is gathered.
func (r row) facts() eventFacts {
	f := eventFacts{copy: r.copy, later: r.later, seq: rowAt.seq, at: rowAt, fingerprint: "fp"}
	if r.copy != copyNone {
		f.seq = 50
	}
	switch r.event {
	case "opened":
		f.kind = evOpened
	case "reopening":
		f.kind, f.reopenMarked = evOpened, true
	case "closed":
		f.kind = evClosed
	case "undecodable":
		f.kind = evUndecodable
	case "unknown-event":
		f.kind = evUnknown
	case "no-metadata":
		f.kind = evNoMetadata
	}
	if r.filtered {
		f.filteredBy = "urgency"
	}
	return f
}

// ticket is the ledger entry of the row (found false: none).
func (r row) ticket() (t ledger.Ticket, found bool) {
	if r.state == phaseNone || r.state == phaseUnavailable {
		return ledger.Ticket{}, false
	}
	t = ledger.Ticket{Fingerprint: "fp", SysID: "s1", Number: "INC1", Status: "inserted", Stream: rowAt.stream, SentAt: rowSince.Add(-time.Hour)}
	switch r.state {
	case phaseClosedUnticketed:
		t.SysID, t.Number, t.Status = "", "", ledger.StatusResolved
	case phaseResolved:
		t.Status = ledger.StatusResolved
	case phaseReopened:
		t.Status = ledger.StatusReopened
	}
	switch r.pos {
	case posEntryOlder:
		t.StreamSeq = 5
	case posSameEvent:
		t.StreamSeq = rowAt.seq
	case posEntryNewer:
		t.StreamSeq = 15
	case posOtherStream:
		t.StreamSeq, t.Stream = 15, "S1"
	}
	if !r.sameFP {
		t.Fingerprint = "fp-other"
	}
	if r.byReplay {
		t.SentAt = rowSince.Add(time.Minute)
	}
	return t, true
}

// ruleKeys are the names of the row's values the rules read (attrs).
var ruleKeys = []string{"mode", "roc", "event", "filter", "copy", "delivery", "turn", "state", "ticketed", "pos", "version", "by", "range", "presence"}

// attrs is the row's value for each of ruleKeys ("n/a" where it has none).
func (r row) attrs() []string {
	ticketed, pos, version, by, presence := "n/a", "n/a", "n/a", "n/a", "n/a"
	switch r.state {
	case phaseUnavailable:
	case phaseNone:
		ticketed, pos = "no", "none"
	default:
		ticketed = pick(r.state >= phaseOpen, "yes", "no")
		pos = [...]string{"", "older", "same", "newer", "other-stream"}[r.pos]
		version = pick(r.sameFP, "same", "other")
		if r.mode != "normal" {
			by = pick(r.byReplay, "replay", "earlier")
		}
	}
	if r.mode == "missing-only" {
		presence = [...]string{"", "absent", "present", "unavailable"}[r.presence]
	}
	return []string{r.mode, onOff(r.roc), r.event, pick(r.filtered, "out", "pass"),
		r.copy.String(), pick(r.later, "later", "first"), [...]string{"", "first", "waited", "cancelled"}[r.turn],
		[...]string{"", "unavailable", "none", "closing-only", "open", "resolved", "reopened"}[r.state],
		ticketed, pos, version, by, pick(r.beyond, "beyond", "in"), presence}
}

// pick is yes if b holds, else no.
func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func onOff(b bool) string { return pick(b, "on", "off") }

func (r row) String() string {
	var b strings.Builder
	for i, v := range r.attrs() {
		if k := ruleKeys[i]; v != "n/a" && k != "ticketed" {
			fmt.Fprintf(&b, "%s=%s ", k, v)
		}
	}
	return strings.TrimSpace(b.String())
}

// condition is one key=value|value of a rule.
type condition struct {
	key    int // in ruleKeys
	values []string
}

// compileRules parses decisionRules' conditions.
func compileRules(t *testing.T) [][]condition {
	t.Helper()
	out := make([][]condition, len(decisionRules))
	for i, rule := range decisionRules {
		for _, cond := range strings.Fields(rule.when) {
			k, vs, ok := strings.Cut(cond, "=")
			key := slices.Index(ruleKeys, k)
			if !ok || key < 0 {
				t.Fatalf("rule %d: bad condition %q", i, cond)
			}
			out[i] = append(out[i], condition{key: key, values: strings.Split(vs, "|")})
		}
	}
	return out
}

// expected is the index of the first rule the row's attributes meet (-1: none).
func expected(rules [][]condition, attrs []string) int {
	for i, conds := range rules {
		if !slices.ContainsFunc(conds, func(c condition) bool { return !slices.Contains(c.values, attrs[c.key]) }) {
			return i
		}
	}
	return -1
}

// run decides the row as the executor does: starting with nothing gathered, it
// answers each gathering action from the row, and returns the final action and what
// was gathered, in order.
func run(r row) (action, []actionKind) {
	f, s, m := r.facts(), itemState{phase: phaseUnread}, r.modeOf()
	var asked []actionKind
	for {
		a := decide(f, s, m)
		if !a.gathers() {
			return a, asked
		}
		if slices.Contains(asked, a.kind) {
			panic(fmt.Sprintf("%s: asked twice for %s", r, a))
		}
		asked = append(asked, a.kind)
		switch a.kind {
		case actWaitTurn:
			f.turn = r.turn
		case actReadLedger:
			s = itemState{phase: phaseUnavailable}
			if r.state != phaseUnavailable {
				s = stateOf(r.ticket())
			}
		case actAskPresence:
			f.presence = r.presence
		}
	}
}

// TestDecisionTable runs every row, mode by mode, and checks that
//   - the first rule the row meets says what decide does (no row without a rule);
//   - legacyDecision, the code before decide, did the same;
//   - decide gathered only what it needed, in order: the ledger after the item's turn
//     and never on the fast path (a first delivery of an original opened event that
//     did not wait, without resolve_on_close, outside a replay); ServiceNow only in a
//     missing-only replay, after the ledger.
//
// Every rule must be reached by some row.
func TestDecisionTable(t *testing.T) {
	t.Parallel()
	rules := compileRules(t)
	used := make([]int, len(rules))
	total := 0
	for _, mode := range []string{"normal", "replay", "missing-only"} {
		for _, roc := range []bool{false, true} {
			all := rows(mode, roc)
			total += len(all)
			t.Run(mode+"/resolve_on_close="+onOff(roc), func(t *testing.T) {
				failures := 0
				fail := func(format string, args ...any) {
					t.Helper()
					t.Errorf(format, args...)
					if failures++; failures > 20 {
						t.FailNow()
					}
				}
				for _, r := range all {
					got, asked := run(r)
					rule := expected(rules, r.attrs())
					switch {
					case rule < 0:
						fail("%s: no rule says what to do (decide: %s)", r, got)
					case got.String() != decisionRules[rule].want:
						fail("%s: decide says %q, rule %d (%s) says %q", r, got, rule, decisionRules[rule].when, decisionRules[rule].want)
					default:
						used[rule]++
					}
					if was := legacyDecision(r); got.String() != was {
						fail("%s: decide says %q, the code before it %q", r, got, was)
					}
					if err := gatheredInOrder(r, asked); err != "" {
						fail("%s: %s (asked %v)", r, err, asked)
					}
				}
			})
		}
	}
	for i, n := range used {
		if n == 0 {
			t.Errorf("rule %d (%s → %s) is reached by no row", i, decisionRules[i].when, decisionRules[i].want)
		}
	}
	t.Logf("%d combinations, %d rules", total, len(rules))
}

// gatheredInOrder says what is wrong with the facts decide asked for on the row.
func gatheredInOrder(r row, asked []actionKind) string {
	turn, ledger, presence := slices.Index(asked, actWaitTurn), slices.Index(asked, actReadLedger), slices.Index(asked, actAskPresence)
	fast := (r.event == "opened" || r.event == "reopening") && !r.roc && r.mode == "normal" && !r.later && r.copy == copyNone && r.turn == turnFirst
	switch {
	case fast && ledger >= 0:
		return "the fast path read the ledger"
	case ledger >= 0 && (turn < 0 || turn > ledger):
		return "ledger read before the item's turn"
	case presence >= 0 && (r.mode != "missing-only" || ledger < 0 || ledger > presence):
		return "ServiceNow asked out of order or outside a missing-only replay"
	}
	return ""
}

func TestPositionAgreesWithTheLedger(t *testing.T) {
	t.Parallel()
	for _, tk := range []ledger.Ticket{{StreamSeq: 5, Stream: "S2"}, {StreamSeq: 10, Stream: "S2"}, {StreamSeq: 15, Stream: "S2"},
		{StreamSeq: 15, Stream: "S1"}, {StreamSeq: 0}, {StreamSeq: 15}, {StreamSeq: 10}} {
		for _, at := range []eventAt{rowAt, {seq: 10}} {
			pos := stateOf(tk, true).positionOf(at)
			if (pos == posEntryNewer) != newer(tk, at) {
				t.Errorf("entry %+v, event %+v: position %s, newerThan %v", tk, at, pos, newer(tk, at))
			}
			if same := tk.SameStream(at.stream) && tk.StreamSeq == at.seq; (pos == posSameEvent) != same {
				t.Errorf("entry %+v, event %+v: position %s, records it %v", tk, at, pos, same)
			}
		}
	}
	legacy := ledger.Ticket{Status: ledger.StatusResolved, SysID: "s"} // written before stream_seq was recorded
	if pos := stateOf(legacy, true).positionOf(rowAt); pos != posEntryOlder {
		t.Errorf("entry without a sequence: position %s, want older than any event", pos)
	}
	if pos := stateOf(ledger.Ticket{}, false).positionOf(rowAt); pos != posNoEntry {
		t.Errorf("no entry: position %s", pos)
	}
}

func TestStateOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		t     ledger.Ticket
		found bool
		want  phase
	}{
		{ledger.Ticket{}, false, phaseNone},
		{ledger.Ticket{Status: ledger.StatusResolved, Fingerprint: "a"}, true, phaseClosedUnticketed},
		{ledger.Ticket{Status: "inserted", SysID: "s"}, true, phaseOpen},
		{ledger.Ticket{Status: "updated", Number: "INC1"}, true, phaseOpen},
		{ledger.Ticket{Status: "ignored", SysID: "s", Number: "INC1"}, true, phaseOpen},
		{ledger.Ticket{Status: ledger.StatusResolved, SysID: "s"}, true, phaseResolved},
		{ledger.Ticket{Status: ledger.StatusReopened, SysID: "s"}, true, phaseReopened},
	} {
		if got := stateOf(tt.t, tt.found).phase; got != tt.want {
			t.Errorf("stateOf(%+v, %v) = %s, want %s", tt.t, tt.found, got, tt.want)
		}
	}
}

// TestDecisionCases are the decision cases integration tests once checked through a
// real NATS server (named in each), each now a row of the table: the sequence of
// events they played, one row per decision, with resolve_on_close where they ran it.
func TestDecisionCases(t *testing.T) {
	t.Parallel()
	opened := row{mode: "normal", event: "opened", turn: turnFirst}
	roc := opened
	roc.roc = true
	with := func(r row, edit func(*row)) row { edit(&r); return r }
	cases := []struct {
		name string
		r    row
		want string
	}{
		// TestRedeliveredOlderVersionIsSuperseded: v1 fails and goes back; v2, behind
		// it in one batch, is posted; v1's redelivery must not put older text back.
		{"v2 waited for v1's turn, nothing in the ledger", with(opened, func(r *row) { r.turn, r.state = turnWaited, phaseNone }), "post create"},
		{"v1 redelivered after v2 was posted", with(opened, func(r *row) { r.later, r.state, r.pos = true, phaseOpen, posEntryNewer }), "ack superseded"},
		// TestClosingBeforeTheIncidentExists: the opened post fails and goes back; the
		// closing behind it finds no incident; the retried opened event (whose failed
		// attempt may have made one) requeues the closing; the copy resolves.
		{"closing, no entry", with(roc, func(r *row) { r.event, r.state = "closed", phaseNone }), "record the closing"},
		{"opened retried behind the recorded closing", with(roc, func(r *row) { r.later, r.state, r.pos = true, phaseClosedUnticketed, posEntryNewer }),
			"requeue the closing, ack superseded"},
		{"the closing's requeued copy", with(roc, func(r *row) {
			r.event, r.copy, r.state, r.pos, r.sameFP = "closed", copyRequeued, phaseClosedUnticketed, posSameEvent, true
		}), "post resolve"},
		// TestReclosingWhileAReopeningIsRetried: the reopening fails and goes back; the
		// next closing is posted; the retried reopening must not reopen.
		{"reopening retried behind the next closing", with(roc, func(r *row) {
			r.event, r.later, r.state, r.pos = "reopening", true, phaseResolved, posEntryNewer
		}), "ack superseded"},
		// TestReopeningAfterAClosingWhoseAnswerWasLost: ServiceNow resolves but the
		// answer is lost; the reopening behind it is posted (the mark decides, not the
		// ledger's phase); the retried closing is superseded.
		{"reopening while the ledger still says open", with(roc, func(r *row) { r.event, r.state, r.pos = "reopening", phaseOpen, posEntryOlder }), "post reopen"},
		{"closing retried behind the reopening", with(roc, func(r *row) { r.event, r.later, r.state, r.pos = "closed", true, phaseReopened, posEntryNewer }),
			"ack superseded"},
		// TestOldOpenedEventDoesNotReopenALegacyEntry: an entry without a sequence
		// (older than any event) says resolved; the first opened event, re-driven,
		// updates without reopening (TestPositionAgreesWithTheLedger: sequence 0 is older).
		{"re-driven opened event, legacy resolved entry", with(roc, func(r *row) {
			r.copy, r.state, r.pos, r.sameFP = copyRedriven, phaseResolved, posEntryOlder, true
		}), "post update"},
		// TestUrgencyBelowTheThresholdAfterTheIncident: an item whose urgency fell
		// below the threshold after its incident was made is still resolved and
		// reopened; a reopening below it of an item without an incident is filtered.
		{"closing below the threshold", with(roc, func(r *row) { r.event, r.filtered, r.state, r.pos = "closed", true, phaseOpen, posEntryOlder }), "post resolve"},
		{"reopening below the threshold", with(roc, func(r *row) { r.event, r.filtered, r.state, r.pos = "reopening", true, phaseResolved, posEntryOlder }),
			"post reopen"},
		{"reopening below the threshold, no incident", with(roc, func(r *row) { r.event, r.filtered, r.state = "reopening", true, phaseNone }), "ack filtered"},
		// TestAHighItemOvertakesABacklog: while the express lane sends items ahead of
		// the stream order, a first delivery reads the ledger: the lane's own post is
		// a duplicate, an older version of an item sent ahead is superseded.
		{"first delivery of what the lane sent ahead", with(opened, func(r *row) {
			r.overtaking, r.state, r.pos, r.sameFP = true, phaseOpen, posSameEvent, true
		}), "ack duplicate"},
		{"older version of an item the lane sent ahead", with(opened, func(r *row) { r.overtaking, r.state, r.pos = true, phaseOpen, posEntryNewer }),
			"ack superseded"},
		{"first delivery while the lane sends ahead, nothing ticketed", with(opened, func(r *row) { r.overtaking, r.state = true, phaseNone }), "post create"},
		{"first delivery while the lane sends ahead, an older version ticketed", with(opened, func(r *row) { r.overtaking, r.state, r.pos = true, phaseOpen, posEntryOlder }),
			"post update"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := run(tt.r); got.String() != tt.want {
				t.Errorf("%s: decide says %q, want %q", tt.r, got, tt.want)
			}
		})
	}
}
