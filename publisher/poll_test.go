package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/topology"
)

// pollRig is an IONIX API emulator over HTTP and a real JetStream with the stream
// and the poller's bucket.
type pollRig struct {
	api    *ionixsim.Server
	client *ionixapi.Client
	js     jetstream.JetStream
	stream jetstream.Stream
	seen   jetstream.KeyValue
}

func newPollRig(t *testing.T, o ionixsim.Options) *pollRig {
	t.Helper()
	return newPollRigOn(t, o, natstest.Start(t).URL())
}

// newPollRigOn is newPollRig over the NATS server at natsURL.
func newPollRigOn(t *testing.T, o ionixsim.Options, natsURL string) *pollRig {
	t.Helper()
	api := ionixsim.New(o)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	client, err := ionixapi.New(ionixapi.Config{BaseURL: srv.URL, Token: "ionix", Account: "acme", MaxBackoff: 50 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	js := natstest.Connect(t, natsURL)
	ctx := context.Background()
	stream, err := topology.EnsureStream(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seen, err := topology.EnsureBucket(ctx, js, topology.DefaultSeenBucket, "poller state", 1)
	if err != nil {
		t.Fatal(err)
	}
	return &pollRig{api: api, client: client, js: js, stream: stream, seen: seen}
}

// poller returns a new poller over the rig's state, as a (re)started process has.
func (r *pollRig) poller() *publisher.Poller {
	return publisher.NewPoller(publisher.APISource(r.client), publisher.New(r.js, ""), publisher.NewSeen(r.seen), zerolog.Nop())
}

func (r *pollRig) poll(t *testing.T) publisher.PollResult {
	t.Helper()
	res, err := r.poller().PollOnce(context.Background())
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return res
}

// events counts the stream's messages of one event.
func (r *pollRig) events(t *testing.T, ev ionix.Event) uint64 {
	t.Helper()
	info, err := r.stream.Info(context.Background(), jetstream.WithSubjectFilter(topology.DefaultSubjectPrefix+"."+string(ev)+".>"))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// lastEvent returns the body of the newest message of the event for the item.
func (r *pollRig) lastEvent(t *testing.T, ev ionix.Event, typ string) ionix.ActionItem {
	t.Helper()
	m, err := r.stream.GetLastMsgForSubject(context.Background(), ionix.Subject(topology.DefaultSubjectPrefix, ev, typ))
	if err != nil {
		t.Fatal(err)
	}
	it, err := ionix.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func TestPollerPublishesChangesOnceAcrossRestarts(t *testing.T) {
	r := newPollRig(t, ionixsim.Options{MaxPageSize: 3})
	items := make([]json.RawMessage, 8)
	for i := range items {
		items[i] = ionixsim.Item("ai-"+string(rune('a'+i)), "Finding "+string(rune('A'+i)), "Vulnerability", 5+float64(i)/2)
	}
	r.api.SetOpen(items...)

	// First poll: every open item, read over three pages.
	if res := r.poll(t); res.Open != 8 || res.New != 8 || res.Published() != 8 {
		t.Fatalf("first poll %+v, want 8 new", res)
	}
	pages := 0
	for _, rq := range r.api.Requests() {
		if strings.HasSuffix(rq.Path, "/open/") {
			pages++
		}
	}
	if pages < 3 {
		t.Errorf("the open list was read in %d requests; with pages of 3 it takes 3", pages)
	}

	// A restarted poller (a new process over the same bucket) publishes nothing.
	if res := r.poll(t); res.Unchanged != 8 || res.Published() != 0 {
		t.Errorf("poll after restart %+v, want 8 unchanged and nothing published", res)
	}
	if n := r.events(t, ionix.EventOpened); n != 8 {
		t.Errorf("%d opened events on the stream, want 8", n)
	}

	// An item's urgency changes: it is published again (the consumer updates the incident).
	r.api.Upsert(ionixsim.Item("ai-c", "Finding C", "Vulnerability", 9.8))
	if res := r.poll(t); res.Changed != 1 || res.Published() != 1 {
		t.Errorf("poll after a change %+v, want 1 changed", res)
	}
	if got := r.lastEvent(t, ionix.EventOpened, "Vulnerability"); got.ID != "ai-c" || got.Urgency != 9.8 {
		t.Errorf("last opened event: %s urgency %v, want ai-c at 9.8", got.ID, got.Urgency)
	}

	// One item moves to the closed list; another just leaves the open list.
	closedAt := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	if !r.api.Close("ai-a", closedAt) || !r.api.Remove("ai-b") {
		t.Fatal("emulator did not close/remove")
	}
	if res := r.poll(t); res.Closed != 2 || res.Open != 6 || res.Published() != 2 {
		t.Errorf("poll after closing %+v, want 2 closing events", res)
	}
	if n := r.events(t, ionix.EventClosed); n != 2 {
		t.Errorf("%d closed events on the stream, want 2", n)
	}
	closed := r.lastEvent(t, ionix.EventClosed, "Vulnerability")
	if closed.IsOpen == nil || *closed.IsOpen || closed.LastClosedAt == "" || closed.Title == "" {
		t.Errorf("closing event %+v: want is_open false, a closing time and the item's fields", closed)
	}
	// ... and once only.
	if res := r.poll(t); res.Published() != 0 {
		t.Errorf("poll after the closings %+v, want nothing published", res)
	}

	// A closed item opens again.
	r.api.Upsert(ionixsim.Item("ai-b", "Finding B", "Vulnerability", 5.5))
	if res := r.poll(t); res.Reopened != 1 || res.Published() != 1 {
		t.Errorf("poll after a reopening %+v, want 1 reopened", res)
	}
}

// TestPollerInfersNoClosingFromAFailedListing: an open list that cannot be read whole
// closes nothing; the next poll that reads it goes on as if nothing happened.
func TestPollerInfersNoClosingFromAFailedListing(t *testing.T) {
	r := newPollRig(t, ionixsim.Options{MaxPageSize: 2})
	r.api.SetOpen(ionixsim.Sample(6, 3)...)
	r.poll(t)
	r.api.FailNext(100, 503)
	res, err := r.poller().PollOnce(context.Background())
	if !errors.Is(err, publisher.ErrListing) {
		t.Fatalf("poll with IONIX down: %v, want ErrListing", err)
	}
	if res.Closed != 0 || r.events(t, ionix.EventClosed) != 0 {
		t.Errorf("a failed listing closed %d items", res.Closed)
	}
	r.api.ClearFaults()
	if res := r.poll(t); res.Unchanged != 6 || res.Published() != 0 {
		t.Errorf("poll after recovery %+v, want 6 unchanged", res)
	}
}

// TestPollerReportsInvalidItems: an item IONIX returns without a type is reported
// with its place in the list and not published; it is not taken for closed either.
func TestPollerReportsInvalidItems(t *testing.T) {
	r := newPollRig(t, ionixsim.Options{})
	good := ionixsim.Item("ok-1", "Open RDP", "Vulnerability", 8)
	bad := json.RawMessage(`{"id":"bad-1","title":{"label":"no type"},"urgency":{"urgency":5}}`)
	r.api.SetOpen(good, bad)
	res := r.poll(t)
	if res.New != 1 || res.Invalid != 1 || len(res.Problems) != 1 {
		t.Fatalf("poll %+v, want 1 new, 1 invalid", res)
	}
	if p := res.Problems[0]; p.ID != "bad-1" || p.Pos.Index != 1 || !strings.Contains(p.Err.Error(), "type") {
		t.Errorf("problem %s, want bad-1 at item 1 naming the missing type", p)
	}
}

// TestPollerSkipsItemsTooLargeToPublish: an item whose message, or the poller's
// record of it, would exceed the server's max_payload is named with its place,
// size and the limit and skipped, first, in the middle or last; the poll goes on,
// publishes the rest, and takes none of them for closed. An item IONIX closes
// but returns too large is closed with the fields last published.
func TestPollerSkipsItemsTooLargeToPublish(t *testing.T) {
	const limit = 48 << 10
	r := newPollRigOn(t, ionixsim.Options{MaxPageSize: 2}, publisher.StartServerWithMaxPayload(t, limit))
	over := func(id string) json.RawMessage { return json.RawMessage(publisher.ItemOfSize(t, id, limit+1)) }
	small := func(id string) json.RawMessage { return ionixsim.Item(id, "Dangling CNAME", "DNS", 8) }
	recordTooLarge := json.RawMessage(publisher.ItemOfSize(t, "record-too-large", limit)) // the message fits, its record not
	// Markup that, escaped as encoding/json escapes <, > and &, would take 70 kB.
	markup := json.RawMessage(`{"id":"markup","title":"t","type":"DNS","urgency":5,"description":"` + strings.Repeat("<b>&</b>", 2000) + `"}`)
	r.api.SetOpen(over("big-first"), small("ok-1"), recordTooLarge, small("ok-2"), markup, over("big-last"))

	res := r.poll(t)
	if res.Open != 6 || res.New != 3 || res.Invalid != 3 {
		t.Fatalf("poll %+v, want 6 open, 3 new, 3 invalid", res)
	}
	want := []struct {
		index  int
		id     string
		reason string
	}{
		{0, "big-first", fmt.Sprintf("its message (body and headers) would be %d bytes, over the limit of %d bytes", limit+1, limit)},
		{2, "record-too-large", "its poller record (a KV value) would be"},
		{5, "big-last", fmt.Sprintf("its message (body and headers) would be %d bytes", limit+1)},
	}
	for i, w := range want {
		p := res.Problems[i]
		if p.Pos.Index != w.index || p.ID != w.id || !errors.Is(p.Err, publisher.ErrTooLarge) || !strings.Contains(p.Err.Error(), w.reason) {
			t.Errorf("problem %d: %s, want item %d (%s) too large: %s", i, p, w.index, w.id, w.reason)
		}
	}
	if n := r.events(t, ionix.EventOpened); n != 3 {
		t.Errorf("%d opened events on the stream, want 3", n)
	}

	// The next poll names them again and closes nothing.
	if res := r.poll(t); res.Unchanged != 3 || res.Invalid != 3 || res.Published() != 0 {
		t.Errorf("second poll %+v, want 3 unchanged, 3 invalid, nothing published", res)
	}
	// An item published before that grows too large stays open.
	r.api.Upsert(over("ok-1"))
	if res := r.poll(t); res.Invalid != 4 || res.Published() != 0 {
		t.Errorf("poll after ok-1 grew %+v, want 4 invalid, nothing published", res)
	}
	// IONIX closes ok-2 and returns it too large: closed from what was published.
	if !r.api.Remove("ok-2") {
		t.Fatal("emulator did not remove ok-2")
	}
	r.api.SetClosed(over("ok-2"))
	res = r.poll(t)
	if res.Closed != 1 || r.events(t, ionix.EventClosed) != 1 {
		t.Fatalf("poll after ok-2 closed %+v, want 1 closing event", res)
	}
	if p := res.Problems[len(res.Problems)-1]; p.ID != "ok-2" || !errors.Is(p.Err, publisher.ErrTooLarge) || !strings.Contains(p.Err.Error(), "closing event") {
		t.Errorf("last problem %s, want ok-2's closing event too large", p)
	}
	if closed := r.lastEvent(t, ionix.EventClosed, "DNS"); closed.ID != "ok-2" || len(closed.Description) > 1000 || closed.IsOpen == nil || *closed.IsOpen {
		t.Errorf("closing event of %s (description of %d bytes), want ok-2 closed as last published", closed.ID, len(closed.Description))
	}
}

// TestPollerStopsAtItsTimeCap: a poll that runs into its time cap stops there
// with ErrPollTimeout (and ErrListing: no closing is inferred from the part of
// the open list it read) instead of running as long as IONIX makes it.
func TestPollerStopsAtItsTimeCap(t *testing.T) {
	r := newPollRig(t, ionixsim.Options{MaxPageSize: 1})
	r.api.SetOpen(ionixsim.Sample(40, 5)...)
	r.api.SetLatency(100 * time.Millisecond) // 40 pages: 4 s
	p := r.poller()
	p.Timeout = 300 * time.Millisecond
	start := time.Now()
	res, err := p.PollOnce(context.Background())
	took := time.Since(start)
	if !errors.Is(err, publisher.ErrPollTimeout) || !errors.Is(err, publisher.ErrListing) {
		t.Fatalf("poll: %v, want ErrPollTimeout and ErrListing", err)
	}
	if took > 2*time.Second {
		t.Errorf("the poll took %s; its cap is %s", took, p.Timeout)
	}
	if res.Open >= 40 || res.Closed != 0 {
		t.Errorf("poll %+v, want part of the open list and no closing", res)
	}
}

// TestPollerPublishesEveryTransitionWithinTheDuplicateWindow: an item closed, reopened
// with the fields it had, closed again and changed back to an earlier version — all
// within the stream's 24 h duplicate window — gives one new message per transition,
// while a poll repeated after stopping between its publish and its state write
// still adds nothing.
func TestPollerPublishesEveryTransitionWithinTheDuplicateWindow(t *testing.T) {
	r := newPollRig(t, ionixsim.Options{})
	r.api.SetOpen(ionixsim.Item("ai-r", "Exposed admin panel", "Vulnerability", 8))
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	steps := []struct {
		name         string
		change       func() bool
		wantOpened   uint64
		wantClosed   uint64
		wantReopened int
	}{
		{"first seen", func() bool { return true }, 1, 0, 0},
		{"closed", func() bool { return r.api.Close("ai-r", at) }, 1, 1, 0},
		{"reopened unchanged", func() bool { return r.api.Reopen("ai-r", at.Add(time.Hour)) }, 2, 1, 1},
		{"closed again", func() bool { return r.api.Close("ai-r", at.Add(2*time.Hour)) }, 2, 2, 0},
		{"reopened again", func() bool { return r.api.Reopen("ai-r", at.Add(3*time.Hour)) }, 3, 2, 1},
		{"urgency raised", func() bool {
			r.api.Upsert(ionixsim.Item("ai-r", "Exposed admin panel", "Vulnerability", 9.5))
			return true
		}, 4, 2, 0},
		{"urgency back", func() bool {
			r.api.Upsert(ionixsim.Item("ai-r", "Exposed admin panel", "Vulnerability", 8))
			return true
		}, 5, 2, 0},
	}
	for _, st := range steps {
		if !st.change() {
			t.Fatalf("%s: the emulator did not make the change", st.name)
		}
		res := r.poll(t)
		if res.Published() != 1 || res.Reopened != st.wantReopened {
			t.Errorf("%s: poll %+v, want 1 published, %d reopened", st.name, res, st.wantReopened)
		}
		opened, closed := r.events(t, ionix.EventOpened), r.events(t, ionix.EventClosed)
		if opened != st.wantOpened || closed != st.wantClosed {
			t.Errorf("%s: %d opened and %d closed events on the stream, want %d and %d", st.name, opened, closed, st.wantOpened, st.wantClosed)
		}
		last, err := r.stream.GetLastMsgForSubject(context.Background(), topology.DefaultSubjectPrefix+".>")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := last.Header.Get(topology.HeaderReopened) == "true", st.wantReopened == 1; got != want {
			t.Errorf("%s: the event published says reopened %v, want %v", st.name, got, want)
		}
	}

	// A poll that published but stopped before writing its state: the next poll
	// publishes the same event again and the stream keeps one copy.
	key := ionix.KeyToken("ai-r")
	before, err := r.seen.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !r.api.Close("ai-r", at.Add(4*time.Hour)) {
		t.Fatal("emulator did not close")
	}
	r.poll(t)
	if _, err := r.seen.Put(context.Background(), key, before.Value()); err != nil { // the state write undone
		t.Fatal(err)
	}
	if res := r.poll(t); res.Closed != 1 {
		t.Errorf("repeated poll %+v, want the closing event published again", res)
	}
	if n := r.events(t, ionix.EventClosed); n != 3 {
		t.Errorf("%d closed events after the repeated poll, want 3 (the repeat a duplicate)", n)
	}
}

// TestPollerCarriesLongIDs: ids far beyond NATS's 4 KB control line (plain, and with
// punctuation that needs encoding) are published, remembered under bounded keys, and
// found again by the next poll (unchanged, nothing published twice).
func TestPollerCarriesLongIDs(t *testing.T) {
	r := newPollRig(t, ionixsim.Options{})
	ids := []string{strings.Repeat("K", 4100), strings.Repeat("K.%* ", 700), strings.Repeat("証", 3000)}
	var items []json.RawMessage
	for _, id := range ids {
		items = append(items, ionixsim.Item(id, "Dangling CNAME", "DNS", 8))
	}
	r.api.SetOpen(items...)
	if res := r.poll(t); res.New != len(ids) || res.Invalid != 0 {
		t.Fatalf("first poll %+v, want %d new", res, len(ids))
	}
	keys, err := r.seen.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for key := range keys.Keys() {
		if len(key) > ionix.MaxKeyTokenLen {
			t.Errorf("a poller state key of %d bytes", len(key))
		}
	}
	if res := r.poll(t); res.Unchanged != len(ids) || res.Published() != 0 {
		t.Errorf("second poll %+v, want %d unchanged", res, len(ids))
	}
}
