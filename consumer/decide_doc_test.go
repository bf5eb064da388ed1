package consumer

import (
	"os"
	"strings"
	"testing"
)

// TestDesignDocShowsTheStateTable: docs/design.md shows decide's state table (states
// × events → actions, outside a replay) for resolve_on_close on and off, as decide
// computes it; the test prints the table when they differ.
func TestDesignDocShowsTheStateTable(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, roc := range []bool{true, false} {
		t.Run("resolve_on_close="+onOff(roc), func(t *testing.T) {
			begin, end := "<!-- decide: resolve_on_close "+onOff(roc)+" -->\n", "<!-- /decide -->"
			_, rest, ok := strings.Cut(doc, begin)
			shown, _, ok2 := strings.Cut(rest, end)
			want := stateTable(roc)
			if !ok || !ok2 || shown != want {
				t.Errorf("docs/design.md does not show the state table between %q and %q; it is:\n%s", strings.TrimSpace(begin), end, want)
			}
		})
	}
}

// stateTable renders decide's answers, in normal mode, for each state of the item (the
// entry's phase, and where it stands relative to the event) and each kind of event.
func stateTable(roc bool) string {
	type column struct {
		name string
		edit func(*row)
	}
	columns := []column{
		{"opened", func(*row) {}},
		{"opened, redelivered", func(r *row) { r.later = true }},
		{"reopening", func(r *row) { r.event = "reopening" }},
		{"requeued copy of an opened event", func(r *row) { r.copy = copyRequeued }},
		{"closed", func(r *row) { r.event = "closed" }},
		{"closed, redelivered", func(r *row) { r.event, r.later = "closed", true }},
		{"requeued copy of a closing", func(r *row) { r.event, r.copy = "closed", copyRequeued }},
	}
	type state struct {
		name string
		r    row
	}
	states := []state{{"none", row{state: phaseNone}}}
	for _, ph := range []phase{phaseClosedUnticketed, phaseOpen, phaseResolved, phaseReopened} {
		for _, pos := range []position{posEntryOlder, posSameEvent, posEntryNewer} {
			if ph == phaseClosedUnticketed && pos == posSameEvent {
				continue // a closing's own entry: only the closing's copy meets it (below)
			}
			// The entry of this very event is of its version; older and newer ones of another.
			states = append(states, state{ph.String() + ", " + pos.String(), row{state: ph, pos: pos, sameFP: pos == posSameEvent}})
		}
	}
	var b strings.Builder
	b.WriteString("| item's state \\ event |")
	for _, c := range columns {
		b.WriteString(" " + c.name + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(columns)) + "\n")
	for _, s := range states {
		b.WriteString("| " + s.name + " |")
		for _, c := range columns {
			r := s.r
			r.mode, r.roc, r.event, r.turn = "normal", roc, "opened", turnFirst
			c.edit(&r)
			a, _ := run(r)
			b.WriteString(" " + a.String() + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
