package backlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/backlog"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/topology"
)

// TestFollowIndexesThePipelinesSubjectsByBand: from the sequence asked, every item on
// the subjects is indexed by its band, others' subjects and undecodable bodies not;
// items published while it follows are added as they come.
func TestFollowIndexesThePipelinesSubjectsByBand(t *testing.T) {
	js := actionItems(t)
	ctx := context.Background()
	pub := publisher.New(js, "")
	publish := func(id string, urgency float64) {
		t.Helper()
		it := ionix.ActionItem{ID: id, Title: "t " + id, Type: "Vulnerability", Urgency: urgency}
		raw, _ := json.Marshal(it)
		dec, err := ionix.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, raw, dec, ionix.EventOpened); err != nil {
			t.Fatal(err)
		}
	}
	publish("before", 9.5) // seq 1: before the start
	for i, u := range []float64{3, 9.1, 7.5, 2} {
		publish(fmt.Sprintf("a-%d", i), u)
	}
	if _, err := js.Publish(ctx, "ionix.action_items.opened.vulnerability", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "ionix.action_items.acme.opened.vulnerability", []byte(`{"id":"x","title":"x","type":"Vulnerability","urgency":9.9}`)); err != nil {
		t.Fatal(err)
	}
	ix := backlog.NewIndex()
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- backlog.Follow(fctx, js, topology.DefaultStream, []string{"ionix.action_items.*.*"}, 2, ix, nil)
	}()
	testkit.WaitFor(t, 5*time.Second, "the four items indexed", func() bool { return ix.Counts() == [3]int{1, 1, 2} })
	publish("later", 9.9)
	testkit.WaitFor(t, 5*time.Second, "the later High item indexed", func() bool { return ix.Counts() == [3]int{2, 1, 2} })
	if seq, b, _ := ix.First(backlog.Medium); seq != 3 || b != backlog.High {
		t.Errorf("First = %d %v, want 3 (a-1, High)", seq, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow: %v", err)
	}
}

// TestScanCountsTheBacklogByBand: Scan reads from the sequence asked to the last one
// and stops; at the limit it says it did not read everything.
func TestScanCountsTheBacklogByBand(t *testing.T) {
	js := actionItems(t)
	ctx := context.Background()
	pub := publisher.New(js, "")
	for i, u := range []float64{9.5, 3, 3, 7, 9.9, 1} {
		it := ionix.ActionItem{ID: fmt.Sprintf("s-%d", i), Title: "t", Type: "DNS", Urgency: u}
		raw, _ := json.Marshal(it)
		if _, err := pub.Publish(ctx, raw, it, ionix.EventOpened); err != nil {
			t.Fatal(err)
		}
	}
	subjects := []string{"ionix.action_items.*.*"}
	for _, tc := range []struct {
		from     uint64
		limit    int
		counts   [3]int
		complete bool
	}{
		{1, 100, [3]int{2, 1, 3}, true},
		{3, 100, [3]int{1, 1, 2}, true},
		{7, 100, [3]int{}, true},
		{1, 4, [3]int{1, 1, 2}, false},
	} {
		ix := backlog.NewIndex()
		complete, err := backlog.Scan(ctx, js, topology.DefaultStream, subjects, tc.from, tc.limit, ix)
		if err != nil || complete != tc.complete || ix.Counts() != tc.counts {
			t.Errorf("Scan from %d, limit %d: %v complete %v (%v), want %v complete %v", tc.from, tc.limit, ix.Counts(), complete, err, tc.counts, tc.complete)
		}
	}
}

// actionItems is a NATS server with the action-item stream, and a connection to it.
func actionItems(t *testing.T) jetstream.JetStream {
	t.Helper()
	js := natstest.Connect(t, natstest.Start(t).URL())
	if _, err := topology.EnsureStream(context.Background(), js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	return js
}
