package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/topology"
)

// TestBucketsFollowTheReplicaCount: a deployment that goes from one replica to three
// (nats.replicas: 3 on a cluster) gets its buckets replicated too, keys kept.
func TestBucketsFollowTheReplicaCount(t *testing.T) {
	cluster := natstest.StartCluster(t, 3)
	js := natstest.Connect(t, cluster.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := topology.EnsureBucket(ctx, js, "ionix_tickets", "tickets", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "item-1", []byte("ticket")); err != nil {
		t.Fatal(err)
	}
	kv, err = topology.EnsureBucket(ctx, js, "ionix_tickets", "tickets", 3)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
		t.Errorf("bucket replicas %d after Ensure with 3, want 3", r)
	}
	if e, err := kv.Get(ctx, "item-1"); err != nil || string(e.Value()) != "ticket" {
		t.Errorf("key after the update: %v, %v", e, err)
	}
}

// TestTopologyFollowsTheReplicaCount: going from one replica to three scales every
// stream, the durable consumer and the buckets in place (the creates meet objects with
// another configuration, which are then updated); messages and position stay.
func TestTopologyFollowsTheReplicaCount(t *testing.T) {
	cluster := natstest.StartCluster(t, 3)
	js := natstest.Connect(t, cluster.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := topology.Ensure(ctx, js, topology.Options{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "ionix.action_items.opened.dns", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// The consumer can scale only once the stream has: until then its update is refused
	// with an error Starting reports, and the caller asks again (ensureTopology does).
	var topo *topology.Topology
	var err error
	for {
		topo, err = topology.Ensure(ctx, js, topology.Options{Replicas: 3})
		if err == nil || !topology.Starting(err) {
			break
		}
		t.Logf("again after: %v", err)
		time.Sleep(100 * time.Millisecond) // the next attempt, not synchronisation
	}
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]jetstream.Stream{"stream": topo.Stream, "dead-letter stream": topo.DLQ}
	for name, bucket := range map[string]jetstream.KeyValue{"tickets": topo.Tickets, "budget": topo.Budget} {
		if streams[name+" bucket"], err = js.Stream(ctx, "KV_"+bucket.Bucket()); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range streams {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != 3 {
			t.Errorf("%s: %d replicas, want 3", name, info.Config.Replicas)
		}
	}
	// Read the consumer once it has settled: a leader, and no scaling left to do.
	var info *jetstream.ConsumerInfo
	for {
		info, err = topo.Consumer.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := info.Cluster; c != nil && c.Leader != "" && c.Desired == nil && len(c.Replicas) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the next look, not synchronisation
	}
	if info.Config.Replicas != 3 || info.NumPending != 1 {
		t.Errorf("consumer: %d replicas and %d pending, want 3 and the message published before", info.Config.Replicas, info.NumPending)
	}
}
