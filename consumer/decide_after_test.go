package consumer

import (
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ledger"
)

// The rules for what follows a post: the requeues the ledger write after it calls
// for, each case with a table row.

const me, other = "me", "other"

var started = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// posted makes a ledger entry of a post: of version fp, with status (a ServiceNow
// import status, resolved or reopened), for the event at seq, by instance by.
func posted(fp, status string, seq uint64, by string) ledger.Ticket {
	return ledger.Ticket{Fingerprint: fp, SysID: "s1", Number: "INC1", Status: status, StreamSeq: seq, Stream: "S", PostedBy: by, SentAt: started.Add(-time.Hour)}
}

// closedUnticketed is a closing recorded without an incident, at seq.
func closedUnticketed(seq uint64) ledger.Ticket {
	return ledger.Ticket{Fingerprint: "c", Status: ledger.StatusResolved, StreamSeq: seq, Stream: "S", PostedBy: other, SentAt: started.Add(-time.Hour)}
}

func TestAfterPost(t *testing.T) {
	t.Parallel()
	ours := posted("v2", "updated", 20, me)
	oursResolving := posted("v2", ledger.StatusResolved, 20, me)
	oursPlainAfterClosing := posted("v2", "updated", 30, me)
	olderByOther := posted("v1", "updated", 10, other)
	olderResolvingByOther := posted("v2", ledger.StatusResolved, 10, other)
	justBefore := olderByOther
	justBefore.SentAt = started.Add(-overlapMargin / 2)
	read := func(t ledger.Ticket) ledgerView { return ledgerView{read: true, found: true, t: t} }
	tests := []struct {
		name string
		o    postOutcome
		roc  bool
		want requeueOrder // seq 0: none
	}{
		// Not written: the ledger records a newer event.
		{"newer version posted meanwhile: requeue it",
			postOutcome{posted: posted("v1", "updated", 10, me), prev: posted("v2", "updated", 20, other), found: true}, false,
			requeueOrder{seq: 20, why: "a newer version was posted while this one was in flight"}},
		{"the same version posted again meanwhile: harmless",
			postOutcome{posted: posted("v2", "updated", 10, me), prev: posted("v2", "updated", 20, other), found: true}, false, requeueOrder{}},
		{"a plain post behind a newer resolving of the same version: harmless (sets no state)",
			postOutcome{posted: posted("v2", "updated", 10, me), prev: posted("v2", ledger.StatusResolved, 20, other), found: true}, true, requeueOrder{}},
		{"a resolving behind a newer reopening: requeue it, reopening",
			postOutcome{posted: posted("v2", ledger.StatusResolved, 10, me), prev: posted("v2", ledger.StatusReopened, 20, other), found: true}, true,
			requeueOrder{seq: 20, reopen: true, why: "a newer version was posted while this one was in flight"}},
		{"the same without resolve_on_close: the copy does not reopen",
			postOutcome{posted: posted("v2", ledger.StatusResolved, 10, me), prev: posted("v2", ledger.StatusReopened, 20, other), found: true}, false,
			requeueOrder{seq: 20, why: "a newer version was posted while this one was in flight"}},
		{"a post behind a closing recorded without an incident: requeue the closing",
			postOutcome{posted: posted("v1", "inserted", 10, me), prev: closedUnticketed(20), found: true}, true,
			requeueOrder{seq: 20, why: "a newer version was posted while this one was in flight"}},
		// Written: did another replica post an older version while ours was in flight?
		{"an older version by another replica after we decided: requeue ours",
			postOutcome{posted: ours, prev: olderByOther, found: true, written: true, view: read(posted("v0", "inserted", 5, other)), started: started}, false,
			requeueOrder{seq: 20, why: "an older version was posted by another replica while this one was in flight"}},
		{"an older resolving by another replica: requeue ours, reopening",
			postOutcome{posted: oursPlainAfterClosing, prev: olderResolvingByOther, found: true, written: true, view: ledgerView{read: true}, started: started}, true,
			requeueOrder{seq: 30, reopen: true, why: "an older version was posted by another replica while this one was in flight"}},
		{"the entry we decided on, unchanged: nothing",
			postOutcome{posted: ours, prev: olderByOther, found: true, written: true, view: read(olderByOther), started: started}, false, requeueOrder{}},
		{"our own older post (posts of one item never overlap in one instance): nothing",
			postOutcome{posted: ours, prev: posted("v1", "updated", 10, me), found: true, written: true, view: ledgerView{read: true}, started: started}, false, requeueOrder{}},
		{"an older post by another replica, harmless after ours: nothing",
			postOutcome{posted: oursResolving, prev: posted("v2", "updated", 10, other), found: true, written: true, view: ledgerView{read: true}, started: started}, true, requeueOrder{}},
		{"not read, the older post ended just before ours began: requeue ours",
			postOutcome{posted: ours, prev: justBefore, found: true, written: true, started: started}, false,
			requeueOrder{seq: 20, why: "an older version was posted by another replica while this one was in flight"}},
		{"not read, the older post ended long before: nothing",
			postOutcome{posted: ours, prev: olderByOther, found: true, written: true, started: started}, false, requeueOrder{}},
		{"the first entry: nothing",
			postOutcome{posted: ours, written: true, view: ledgerView{read: true}, started: started}, false, requeueOrder{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := afterPost(tt.o, me, mode{resolveOnClose: tt.roc})
			if ok != (tt.want.seq != 0) || got != tt.want {
				t.Errorf("afterPost = %+v (%v), want %+v", got, ok, tt.want)
			}
		})
	}
}

func TestAfterRepost(t *testing.T) {
	t.Parallel()
	at := eventAt{seq: 10, stream: "S"}
	ours := posted("v1", ledger.StatusResolved, 10, me)
	tests := []struct {
		name  string
		cur   ledger.Ticket
		found bool
		want  requeueOrder
	}{
		{"no entry", ledger.Ticket{}, false, requeueOrder{}},
		{"ours is still the newest", ours, true, requeueOrder{}},
		{"another version, of another stream instance (not newer)", ledger.Ticket{Fingerprint: "v0", SysID: "s", StreamSeq: 30, Stream: "T"}, true, requeueOrder{}},
		{"a newer version overtaken by the second post: requeue it, reopening",
			posted("v2", "updated", 20, other), true, requeueOrder{seq: 20, reopen: true, why: "a newer version was posted while the item was posted again to check coalesce"}},
		{"a newer resolving of the same version: harmless", posted("v1", ledger.StatusResolved, 20, other), true, requeueOrder{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := afterRepost(ours, tt.cur, tt.found, at, mode{resolveOnClose: true})
			if ok != (tt.want.seq != 0) || got != tt.want {
				t.Errorf("afterRepost = %+v (%v), want %+v", got, ok, tt.want)
			}
		})
	}
}

// TestPostAfterRecording: a closing the ledger refused to record without an incident
// is posted after all when an incident turned up meanwhile for an event not newer than
// the closing.
func TestPostAfterRecording(t *testing.T) {
	t.Parallel()
	at := eventAt{seq: 20, stream: "S"}
	tests := []struct {
		name           string
		prev           ledger.Ticket
		found, written bool
		want           bool
	}{
		{"recorded", ledger.Ticket{}, false, true, false},
		{"recorded over an entry", closedUnticketed(10), true, true, false},
		{"an incident turned up meanwhile", posted("v1", "inserted", 10, other), true, false, true},
		{"an incident of another stream instance turned up", ledger.Ticket{SysID: "s", StreamSeq: 30, Stream: "T"}, true, false, true},
		{"a newer event with an incident: the closing is superseded", posted("v2", "inserted", 30, other), true, false, false},
		{"a newer closing recorded without an incident", closedUnticketed(30), true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := postAfterRecording(tt.prev, tt.found, tt.written, at); got != tt.want {
				t.Errorf("postAfterRecording = %v, want %v", got, tt.want)
			}
		})
	}
}
