package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// TestRecreatedStreamIsNotOlderThanTheLedger: the stream is deleted and created again
// while the ticket ledger survives; the new stream counts from 1, and a changed item
// published on it is posted — not taken for older than the ledger's entry (written
// at a higher sequence of the stream before) and acknowledged unposted.
func TestRecreatedStreamIsNotOlderThanTheLedger(t *testing.T) {
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	ctx := context.Background()
	o := consumer.Options{Mapping: mapping.DefaultOptions(), ResolveOnClose: true, FetchWait: 300 * time.Millisecond}
	v1 := item("again-1", "Open Kibana on logs.example.com", "Cloud", 8, "2026-09-01T10:00:00Z")
	r.publish(t, items("filler", 4)...)
	r.publish(t, v1) // sequence 5
	first, err := consumer.New(r.deps(r.topo.Consumer), o)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- first.Run(runCtx) }()
	waitFor(t, 10*time.Second, "the first stream delivered", func() bool { return first.Stats().Created == 5 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if err := r.js.DeleteStream(ctx, r.topo.Names.Stream); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Ensure(ctx, r.js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.topo = topo
	v2 := v1
	v2.Title = "Open Kibana on logs.example.com (indices readable)"
	r.publish(t, v2) // sequence 1 of the new stream
	c := r.startWith(t, r.topo.Consumer, o)
	waitFor(t, 10*time.Second, "the changed item", func() bool { return c.Stats().Received == 1 })
	r.waitDrained(t)
	if in := incidentOf(t, r.sim, v1.ID); in.ShortDescription != v2.Title {
		t.Errorf("incident says %q, want the version published on the new stream %q", in.ShortDescription, v2.Title)
	}
	if s := c.Stats(); s.Superseded != 0 || s.Updated != 1 {
		t.Errorf("stats %+v: want the changed item posted, nothing superseded", s)
	}
}
