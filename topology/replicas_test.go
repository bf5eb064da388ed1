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
