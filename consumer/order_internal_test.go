package consumer

import (
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ledger"
)

func TestHarmlessAfter(t *testing.T) {
	t.Parallel()
	plain := func(fp string) ledger.Ticket { return ledger.Ticket{Fingerprint: fp, Status: "updated", SysID: "s1"} }
	resolved := func(fp string) ledger.Ticket {
		return ledger.Ticket{Fingerprint: fp, Status: ledger.StatusResolved, SysID: "s1"}
	}
	reopened := func(fp string) ledger.Ticket {
		return ledger.Ticket{Fingerprint: fp, Status: ledger.StatusReopened, SysID: "s1"}
	}
	noIncident := func(fp string) ledger.Ticket { return ledger.Ticket{Fingerprint: fp, Status: ledger.StatusResolved} } // a closing recorded before any post
	tests := []struct {
		name         string
		late, newest ledger.Ticket
		want         bool
	}{
		{"same version, plain posts", plain("a"), plain("a"), true},
		{"older version", plain("a"), plain("b"), false},
		{"plain post after the resolving", plain("a"), resolved("a"), true},
		{"plain post after the reopening", plain("a"), reopened("a"), true},
		{"resolving after a plain post", resolved("a"), plain("a"), false},
		{"resolving after the reopening", resolved("a"), reopened("a"), false},
		{"reopening after the resolving", reopened("a"), resolved("a"), false},
		{"resolving twice", resolved("a"), resolved("a"), true},
		{"reopening twice", reopened("a"), reopened("a"), true},
		{"older version's resolving", resolved("a"), resolved("b"), false},
		{"a closing recorded without a post, late", noIncident("a"), plain("a"), true},
		{"plain post after a closing recorded without a post", plain("a"), noIncident("a"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := harmlessAfter(tt.late, tt.newest); got != tt.want {
				t.Errorf("harmlessAfter(%+v, %+v) = %v, want %v", tt.late, tt.newest, got, tt.want)
			}
		})
	}
}

func TestCopyReopens(t *testing.T) {
	t.Parallel()
	plain := ledger.Ticket{Fingerprint: "a", Status: "updated"}
	resolved := ledger.Ticket{Fingerprint: "a", Status: ledger.StatusResolved}
	reopened := ledger.Ticket{Fingerprint: "a", Status: ledger.StatusReopened}
	tests := []struct {
		name         string
		late, newest ledger.Ticket
		want         bool
	}{
		{"plain opened after an older closing", resolved, plain, true},
		{"reopening after an older closing", resolved, reopened, true},
		{"reopening after an older plain post", plain, reopened, true},
		{"plain opened after an older plain post", plain, plain, false},
		{"closing after an older reopening", reopened, resolved, false},
		{"closing after an older plain post", plain, resolved, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := copyReopens(tt.late, tt.newest); got != tt.want {
				t.Errorf("copyReopens(late %s, newest %s) = %v, want %v", tt.late.Status, tt.newest.Status, got, tt.want)
			}
		})
	}
}

func TestLedgerViewChangedTo(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	read := ledger.Ticket{Fingerprint: "a", Status: "inserted", SysID: "s", StreamSeq: 1, PostedBy: "x", SentAt: at}
	other := read
	other.StreamSeq, other.Status, other.PostedBy = 2, ledger.StatusResolved, "y"
	tests := []struct {
		name    string
		view    ledgerView
		prev    ledger.Ticket
		started time.Time
		want    bool
	}{
		{"read, unchanged", ledgerView{read: true, found: true, t: read}, read, at.Add(time.Hour), false},
		{"read, written meanwhile", ledgerView{read: true, found: true, t: read}, other, at.Add(time.Hour), true},
		{"read nothing, written meanwhile", ledgerView{read: true}, other, at.Add(time.Hour), true},
		{"not read, posted just before ours began", ledgerView{}, other, at.Add(500 * time.Millisecond), true},
		{"not read, posted long before ours began", ledgerView{}, other, at.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.view.changedTo(tt.prev, tt.started); got != tt.want {
				t.Errorf("changedTo = %v, want %v", got, tt.want)
			}
		})
	}
}
