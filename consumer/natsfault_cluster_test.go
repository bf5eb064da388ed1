package consumer_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
)

// TestClusterLeaderLossLosesNothing runs the pipeline on a three-node cluster with
// every stream and bucket replicated three times. Four faults come one after the
// other, each while the consumer holds a full set of messages whose posts are under
// way (held at the gate, acknowledged only after the fault) and while more items are
// being published: (a) the stream leader steps down, (b) the consumer leader steps
// down, (c) the node leading the consumer shuts down; items go on flowing through the
// other two, then it comes back; (d) the node the consumer is connected to shuts down
// and the client fails over.
func TestClusterLeaderLossLosesNothing(t *testing.T) {
	t.Parallel()
	const chunk = 30 // items published before each fault; a third as many again during it
	cl := natstest.StartCluster(t, 3)
	fr := newFaultRig(t, cl.URLs(), faultSetup{replicas: 3})
	names := fr.topo.Names
	ctl := faultConn(t, cl.URLs(), "test-control", zerolog.Nop())

	// The publisher publishes what it is handed, retrying through every fault, while
	// the test goes on.
	queue := make(chan []ionix.ActionItem, 16)
	pubErr := make(chan error, 1)
	go func() {
		for batch := range queue {
			if err := fr.publish(20*time.Second, batch...); err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()
	queued := 0
	publish := func(prefix string, n int) {
		queue <- items(prefix, n)
		queued += n
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			close(queue)
		}
	})
	// holdPosts publishes a chunk and waits until every worker holds a post of it at
	// the gate: those messages were delivered before the fault and are settled after.
	holdPosts := func(prefix string) {
		t.Helper()
		fr.imp.holdFrom(int(fr.imp.startedCount()) + chunk/3)
		publish(prefix, chunk)
		testkit.WaitFor(t, 30*time.Second, "every worker to hold a post at the gate ("+prefix+")", func() bool {
			return fr.imp.heldCount() == faultConcurrency
		})
	}
	streamLeader := func(ctx context.Context) (string, error) {
		info, err := fr.topo.Stream.Info(ctx)
		if err != nil || info.Cluster == nil {
			return "", err
		}
		return info.Cluster.Leader, nil
	}
	consumerLeader := func(ctx context.Context) (string, error) {
		info, err := fr.topo.Consumer.Info(ctx)
		if err != nil || info.Cluster == nil {
			return "", err
		}
		return info.Cluster.Leader, nil
	}

	// (a) The stream leader steps down.
	holdPosts("a")
	publish("a-during", chunk/3)
	old, now := stepDown(t, ctl, "$JS.API.STREAM.LEADER.STEPDOWN."+names.Stream, streamLeader)
	t.Logf("at %d incidents: stream leader %s stepped down, %s leads; %d posts held across", fr.incidents(), old, now, fr.imp.open())

	// (b) The consumer leader steps down.
	holdPosts("b")
	publish("b-during", chunk/3)
	old, now = stepDown(t, ctl, "$JS.API.CONSUMER.LEADER.STEPDOWN."+names.Stream+"."+names.Consumer, consumerLeader)
	t.Logf("at %d incidents: consumer leader %s stepped down, %s leads; %d posts held across", fr.incidents(), old, now, fr.imp.open())

	// (c) The node that leads the consumer shuts down, and items flow without it.
	holdPosts("c")
	leader := currentLeader(t, consumerLeader)
	node := cl.Node(leader)
	if node == nil {
		t.Fatalf("consumer leader %q is not a node of the cluster", leader)
	}
	connected := fr.nc.ConnectedServerName()
	node.Stop()
	publish("c-during", chunk/3)
	t.Logf("at %d incidents: node %s (consumer leader) shut down; the consumer was connected to %s; %d posts held across",
		fr.incidents(), leader, connected, fr.imp.open())
	fr.waitIncidents(t, queued, 30*time.Second)
	now = currentLeader(t, consumerLeader)
	if now == leader {
		t.Errorf("the consumer is still led by the stopped node %s", leader)
	}
	t.Logf("at %d incidents: every item so far delivered with %s down (consumer led by %s)", fr.incidents(), leader, now)

	// It comes back and catches up.
	node.Start(t)
	cl.WaitReady(t, 20*time.Second)
	fr.waitReplicasCurrent(t, 20*time.Second)

	// (d) The node the consumer is connected to shuts down: the client fails over to
	// another node while the consumer holds messages.
	holdPosts("d")
	testkit.WaitFor(t, 10*time.Second, "the consumer's connection", func() bool { return fr.nc.Status() == nats.CONNECTED })
	connected = fr.nc.ConnectedServerName()
	node = cl.Node(connected)
	if node == nil {
		t.Fatalf("the consumer is connected to %q, not a node of the cluster", connected)
	}
	node.Stop()
	publish("d-during", chunk/3)
	t.Logf("at %d incidents: node %s (the consumer's connection) shut down; %d posts held across", fr.incidents(), connected, fr.imp.open())
	fr.waitIncidents(t, queued, 30*time.Second)
	if now := fr.nc.ConnectedServerName(); now == connected || now == "" {
		t.Errorf("the consumer's connection is on %q after %s stopped", now, connected)
	}
	node.Start(t)
	cl.WaitReady(t, 20*time.Second)
	t.Logf("at %d incidents: every item so far delivered; node %s back", fr.incidents(), connected)

	publish("after", chunk)
	close(queue)
	closed = true

	select {
	case err := <-pubErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the publisher did not finish within 30s (%d of %d published, %d incidents)", len(fr.publishedIDs()), queued, fr.incidents())
	}
	fr.waitAllDelivered(t, 20*time.Second)
	if n := len(fr.publishedIDs()); n != queued {
		t.Fatalf("%d items published, want %d", n, queued)
	}
	fr.checkNothingLost(t)
}

// waitReplicasCurrent waits until the stream, the durable consumer and the ticket
// bucket each have a leader and every other replica online and current.
func (fr *faultRig) waitReplicasCurrent(t *testing.T, timeout time.Duration) {
	t.Helper()
	current := func(ci *jetstream.ClusterInfo) bool {
		if ci == nil || ci.Leader == "" {
			return false
		}
		for _, p := range ci.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
		return true
	}
	testkit.WaitFor(t, timeout, "every replica to be current", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		si, err := fr.topo.Stream.Info(ctx)
		if err != nil || !current(si.Cluster) {
			return false
		}
		ci, err := fr.topo.Consumer.Info(ctx)
		if err != nil || !current(ci.Cluster) {
			return false
		}
		ks, err := fr.js.Stream(ctx, "KV_"+fr.topo.Names.TicketsBucket)
		if err != nil {
			return false
		}
		ki, err := ks.Info(ctx)
		return err == nil && current(ki.Cluster)
	})
}

// stepDown asks the leader of a stream or consumer to step down (retrying while an
// election is already under way) and waits until another server leads it. It returns
// the old and the new leader.
func stepDown(t *testing.T, nc *nats.Conn, subject string, leaderOf func(context.Context) (string, error)) (old, now string) {
	t.Helper()
	old = currentLeader(t, leaderOf)
	testkit.WaitFor(t, 15*time.Second, "step-down "+subject+" to be accepted", func() bool {
		resp, err := nc.Request(subject, nil, 2*time.Second)
		if err != nil {
			return false
		}
		var r struct {
			Success bool `json:"success"`
			Error   *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(resp.Data, &r) != nil {
			return false
		}
		if !r.Success && r.Error != nil {
			t.Logf("step-down %s: %s", subject, r.Error.Description)
		}
		return r.Success
	})
	testkit.WaitFor(t, 15*time.Second, "a new leader after "+subject, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l, err := leaderOf(ctx)
		now = l
		return err == nil && l != "" && l != old
	})
	return old, now
}

// currentLeader waits until the stream or consumer has a leader and returns its name.
func currentLeader(t *testing.T, leaderOf func(context.Context) (string, error)) string {
	t.Helper()
	var leader string
	testkit.WaitFor(t, 15*time.Second, "a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l, err := leaderOf(ctx)
		leader = l
		return err == nil && l != ""
	})
	return leader
}
