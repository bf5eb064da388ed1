package consumer

import "testing"

// TestExpressDoesNotPostOverAClosedItem: with resolve_on_close, the lane leaves an
// event of an item whose ledger says closed to its delivery, unless it is the marked
// reopening: a reopening earlier in the stream must reopen the incident first, in
// its place (a plain update sent ahead would leave it Resolved for good).
func TestExpressDoesNotPostOverAClosedItem(t *testing.T) {
	post := action{kind: actPost}
	for _, tc := range []struct {
		name    string
		roc     bool
		phase   phase
		reopen  bool
		a       action
		mayPost bool
	}{
		{"open item, update", true, phaseOpen, false, post, true},
		{"resolved item, update", true, phaseResolved, false, post, false},
		{"closing recorded without incident, update", true, phaseClosedUnticketed, false, post, false},
		{"resolved item, the marked reopening", true, phaseResolved, true, post, true},
		{"resolved item, resolve_on_close off", false, phaseResolved, false, post, true},
		{"not a post", true, phaseOpen, false, action{kind: actAck}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &delivery{state: itemState{phase: tc.phase}, facts: eventFacts{reopenMarked: tc.reopen}}
			if got := expressMayPost(d, tc.a, tc.roc); got != tc.mayPost {
				t.Errorf("expressMayPost = %v, want %v", got, tc.mayPost)
			}
		})
	}
}
