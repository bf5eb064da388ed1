package consumer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// NATS fault tests: a server restart, and in a three-node cluster the loss of the
// stream leader, the consumer leader, the node that leads the consumer and the node
// the consumer is connected to, all while items flow. Whatever NATS does, every item must become exactly one incident, none
// may be dead-lettered, and the consumer must go on running.

// faultAckWait is the durable consumer's AckWait in these tests: an acknowledgement
// lost in a fault comes back as a redelivery after it, so it bounds how long the
// tests wait for such a message (the default, 2m, would only make them slow).
const faultAckWait = 3 * time.Second

// faultConcurrency is how many messages the consumer holds at once.
const faultConcurrency = 4

// faultRig is the pipeline over NATS servers the test breaks: the consumer and the
// publisher each on their own reconnecting connection.
type faultRig struct {
	*rig // js (the consumer's), topo, sim, snow, pub (on its own connection)

	nc   *nats.Conn // the consumer's connection
	imp  *gatedImporter
	msgs *trackedConsumer
	log  *syncBuffer
	c    *consumer.Consumer
	// done receives Run's result; Run must not return before the test ends.
	done chan error

	mu        sync.Mutex
	published []string // ids published (acknowledged by the stream)
	attempts  int      // publish attempts, retries included
}

// newFaultRig connects to urls (comma-separated) and starts the consumer. Ensuring
// the topology is retried: a cluster may still be electing leaders.
func newFaultRig(t *testing.T, urls string, replicas int) *faultRig {
	t.Helper()
	fr := &faultRig{log: &syncBuffer{}, done: make(chan error, 1)}
	logger := zerolog.New(fr.log).With().Timestamp().Logger()
	// Registered first, so it runs last: after the consumer has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consumer log (posts that went through omitted):\n%s", fr.log.interesting(300))
		}
	})
	fr.nc = faultConn(t, urls, "consumer", logger)
	js, err := jetstream.New(fr.nc)
	if err != nil {
		t.Fatal(err)
	}
	pubNC := faultConn(t, urls, "publisher", logger)
	pubJS, err := jetstream.New(pubNC)
	if err != nil {
		t.Fatal(err)
	}

	var topo *topology.Topology
	waitFor(t, 30*time.Second, "the topology to be created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		topo, err = topology.Ensure(ctx, js, topology.Options{Replicas: replicas, AckWait: faultAckWait})
		if err != nil {
			logger.Warn().Err(err).Msg("test: ensure topology")
		}
		return err == nil
	})

	sim := emulator.New(emulator.Options{})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	snow, err := servicenow.New(servicenow.Config{
		InstanceURL: ts.URL, ClientID: "ionix", ClientSecret: "ionix", Username: "ionix", Password: "ionix",
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	fr.rig = &rig{js: js, topo: topo, sim: sim, snow: snow, pub: publisher.New(pubJS, "")}
	fr.imp = &gatedImporter{Importer: snow}
	fr.msgs = &trackedConsumer{Consumer: topo.Consumer}

	fr.c, err = consumer.New(consumer.Deps{
		Consumer:    fr.msgs,
		Importer:    fr.imp,
		Ledger:      consumer.NewLedger(topo.Tickets),
		DeadLetters: consumer.NewDeadLetters(js, topo.Names),
		Stream:      topo.Stream,
		Log:         logger,
	}, consumer.Options{
		Filter:      mapping.Filter{UrgencyThreshold: 1},
		Mapping:     mapping.DefaultOptions(),
		Concurrency: faultConcurrency,
		FetchWait:   500 * time.Millisecond,
		AckWait:     faultAckWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { fr.done <- fr.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-fr.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(45 * time.Second):
			t.Errorf("Run did not return within 45s of its context ending")
		}
	})
	return fr
}

// faultConn connects with unlimited, quick reconnects and logs the connection's
// events into the test log.
func faultConn(t *testing.T, urls, name string, log zerolog.Logger) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn().Err(err).Str("conn", name).Msg("test: NATS disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("conn", name).Str("server", nc.ConnectedServerName()).Msg("test: NATS reconnected")
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// publish publishes the items one by one, retrying each (same de-duplication id)
// until the stream acknowledges it or timeout passes: during a restart or an election
// a publish may fail or go unanswered, and the item is only lost if the consumer
// loses it.
func (fr *faultRig) publish(timeout time.Duration, items ...ionix.ActionItem) error {
	for _, it := range items {
		raw, err := json.Marshal(it)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(timeout)
		for {
			fr.mu.Lock()
			fr.attempts++
			fr.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = fr.pub.Publish(ctx, raw, it, ionix.EventOpened)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("publish %s: no acknowledgement within %s: %w", it.ID, timeout, err)
			}
			pause(50 * time.Millisecond) // the next attempt, not synchronisation
		}
		fr.mu.Lock()
		fr.published = append(fr.published, it.ID)
		fr.mu.Unlock()
	}
	return nil
}

func (fr *faultRig) publishedIDs() []string {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return slices.Clone(fr.published)
}

func (fr *faultRig) incidents() int { return len(fr.sim.Incidents()) }

// waitIncidents waits until at least n incidents exist.
func (fr *faultRig) waitIncidents(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for fr.incidents() < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d incidents, want %d (published items without one: %v); consumer stats %+v; Run running: %v",
				timeout, fr.incidents(), n, fr.missing(), fr.c.Stats(), fr.running())
		}
		pause(20 * time.Millisecond)
	}
}

// running reports whether Run is still running.
func (fr *faultRig) running() bool {
	select {
	case err := <-fr.done:
		fr.done <- err
		return false
	default:
		return true
	}
}

// waitAllDelivered waits until every published item has an incident and the durable
// consumer has nothing pending or unacknowledged.
func (fr *faultRig) waitAllDelivered(t *testing.T, timeout time.Duration) {
	t.Helper()
	want := len(fr.publishedIDs())
	deadline := time.Now().Add(timeout)
	for {
		n := fr.incidents()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := fr.topo.Consumer.Info(ctx)
		cancel()
		if n >= want && err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			state := fmt.Sprintf("consumer info error: %v", err)
			if err == nil {
				state = fmt.Sprintf("pending %d, ack pending %d, redelivered %d, delivered stream seq %d, ack floor stream seq %d",
					info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered.Stream, info.AckFloor.Stream)
			}
			t.Fatalf("after %s: %d of %d items have an incident (missing %v); %s; consumer stats %+v; Run running: %v",
				timeout, n, want, fr.missing(), state, fr.c.Stats(), fr.running())
		}
		pause(50 * time.Millisecond)
	}
}

// missing lists the published ids without an incident.
func (fr *faultRig) missing() []string {
	have := map[string]bool{}
	for _, in := range fr.sim.Incidents() {
		have[strings.TrimPrefix(in.CorrelationID, "ionix:")] = true
	}
	var out []string
	for _, id := range fr.publishedIDs() {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// checkNothingLost asserts that every published item is exactly one incident,
// inserted once, that nothing was dead-lettered, and that the consumer still runs.
func (fr *faultRig) checkNothingLost(t *testing.T) {
	t.Helper()
	ids := fr.publishedIDs()
	byID := map[string][]emulator.Incident{}
	updates := 0
	for _, in := range fr.sim.Incidents() {
		id := strings.TrimPrefix(in.CorrelationID, "ionix:")
		byID[id] = append(byID[id], in)
		updates += in.Updates
	}
	if got := len(fr.sim.Incidents()); got != len(ids) {
		t.Errorf("%d incidents for %d published items", got, len(ids))
	}
	for _, id := range ids {
		ins := byID[id]
		if len(ins) != 1 {
			t.Errorf("item %s has %d incidents, want 1", id, len(ins))
			continue
		}
		if ins[0].Inserts != 1 {
			t.Errorf("item %s: incident %s inserted %d times", id, ins[0].Number, ins[0].Inserts)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dlq *jetstream.StreamInfo
	var err error
	for dlq, err = fr.topo.DLQ.Info(ctx); err != nil && ctx.Err() == nil; dlq, err = fr.topo.DLQ.Info(ctx) {
		pause(50 * time.Millisecond)
	}
	switch {
	case err != nil:
		t.Errorf("dead-letter stream info: %v", err)
	case dlq.State.Msgs != 0:
		t.Errorf("%d dead letters, want none", dlq.State.Msgs)
	}
	s := fr.c.Stats()
	if s.DeadLettered != 0 {
		t.Errorf("consumer dead-lettered %d items", s.DeadLettered)
	}
	if !fr.running() {
		t.Errorf("Run returned while NATS was failing: %v", <-fr.done)
	}
	fr.mu.Lock()
	attempts := fr.attempts
	fr.mu.Unlock()
	t.Logf("%d items (%d publish attempts): %d incidents, %d import requests, %d coalesced updates; consumer stats %+v",
		len(ids), attempts, len(fr.sim.Incidents()), fr.sim.ImportCount(), updates, s)
}

// TestNATSRestartLosesNothing stops the only nats-server while the consumer holds
// messages whose posts are under way (ServiceNow accepts them while NATS is down, so
// the ledger write and the ack meet a dead connection), starts it again on the same
// port and store, and publishes more.
//
// The quick restart brings the server back as soon as the consumer has lost its
// connection: what the consumer sends meanwhile waits in the client's reconnect
// buffer. The long outage keeps it down until the consumer has given up on every
// message it held (the ledger write times out and the message is returned): the
// crash window between ServiceNow accepting an item and the ledger recording it.
func TestNATSRestartLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		long bool
	}{{"quick restart", false}, {"long outage", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const before, after, holdAt = 60, 30, 20
			node := natstest.StartNode(t, embedded.Options{})
			fr := newFaultRig(t, node.URL(), 1)
			// The holdAt-th import and the next ones wait at the gate until the
			// server is down, filling every worker slot.
			fr.imp.holdFrom(holdAt)
			if err := fr.publish(10*time.Second, items("before", before)...); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "every worker to hold a post at the gate", func() bool {
				return fr.imp.heldCount() == faultConcurrency
			})
			atStop := fr.incidents()
			node.Stop()
			waitFor(t, 10*time.Second, "the consumer to see NATS gone", func() bool { return fr.nc.Status() != nats.CONNECTED })
			held := fr.imp.open()
			// The held posts reach ServiceNow while NATS is down.
			waitFor(t, 10*time.Second, "the held posts to be accepted", func() bool {
				return fr.imp.finishedCount() >= fr.imp.startedCount()
			})
			if fr.incidents() != atStop+held {
				t.Errorf("%d incidents after the %d held posts, want %d: the fault was not exercised", fr.incidents(), held, atStop+held)
			}
			if tc.long {
				waitFor(t, 20*time.Second, "the consumer to settle every message it held", func() bool {
					return fr.msgs.inFlight() == 0
				})
			}
			t.Logf("server stopped at %d incidents; %d posts accepted while NATS was down; %d messages still held at the restart",
				atStop, held, fr.msgs.inFlight())

			node.Start(t)
			waitFor(t, 10*time.Second, "the consumer to reconnect", func() bool { return fr.nc.Status() == nats.CONNECTED })
			if err := fr.publish(10*time.Second, items("after", after)...); err != nil {
				t.Fatal(err)
			}
			fr.waitAllDelivered(t, 20*time.Second)
			if n := len(fr.publishedIDs()); n != before+after {
				t.Fatalf("%d items published, want %d", n, before+after)
			}
			fr.checkNothingLost(t)
		})
	}
}

// TestClusterLeaderLossLosesNothing runs the pipeline on a three-node cluster with
// every stream and bucket replicated three times. Four faults come one after the
// other, each while the consumer holds a full set of messages whose posts are under
// way (held at the gate, acknowledged only after the fault) and while more items are
// being published: (a) the stream leader steps down, (b) the consumer leader steps
// down, (c) the node leading the consumer shuts down; items go on flowing through the
// other two, then it comes back; (d) the node the consumer is connected to shuts down
// and the client fails over.
func TestClusterLeaderLossLosesNothing(t *testing.T) {
	const chunk = 30 // items published before each fault; a third as many again during it
	cl := natstest.StartCluster(t, 3)
	fr := newFaultRig(t, cl.URLs(), 3)
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
		waitFor(t, 30*time.Second, "every worker to hold a post at the gate ("+prefix+")", func() bool {
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
	waitFor(t, 10*time.Second, "the consumer's connection", func() bool { return fr.nc.Status() == nats.CONNECTED })
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
	waitFor(t, timeout, "every replica to be current", func() bool {
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
	waitFor(t, 15*time.Second, "step-down "+subject+" to be accepted", func() bool {
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
	waitFor(t, 15*time.Second, "a new leader after "+subject, func() bool {
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
	waitFor(t, 15*time.Second, "a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l, err := leaderOf(ctx)
		leader = l
		return err == nil && l != ""
	})
	return leader
}

// gatedImporter passes imports to ServiceNow; once armed with holdFrom(n), the n-th
// import and every later one wait until open is called (or their context ends).
type gatedImporter struct {
	consumer.Importer

	mu       sync.Mutex
	from     int // 0: nothing is held
	started  int
	held     int
	release  chan struct{}
	finished atomic.Int64
}

func (g *gatedImporter) holdFrom(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.from, g.release, g.held = n, make(chan struct{}), 0
}

// open lets the held imports (and all later ones) through and returns how many were
// held.
func (g *gatedImporter) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
	g.from = 0
	return g.held
}

func (g *gatedImporter) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

func (g *gatedImporter) startedCount() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return int64(g.started)
}

func (g *gatedImporter) finishedCount() int64 { return g.finished.Load() }

func (g *gatedImporter) Import(ctx context.Context, record map[string]string) (servicenow.Result, error) {
	g.mu.Lock()
	g.started++
	var gate chan struct{}
	if g.from > 0 && g.started >= g.from {
		gate = g.release
		g.held++
	}
	g.mu.Unlock()
	defer g.finished.Add(1)
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return servicenow.Result{}, ctx.Err()
		}
	}
	return g.Importer.Import(ctx, record)
}

// trackedConsumer counts the messages the consumer holds: fetched and not yet
// settled (acked, naked or terminated, whether or not the server heard it).
type trackedConsumer struct {
	jetstream.Consumer
	fetched, settled atomic.Int64
}

func (c *trackedConsumer) inFlight() int64 { return c.fetched.Load() - c.settled.Load() }

func (c *trackedConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	b, err := c.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	return wrapBatch(b, func(m jetstream.Msg) jetstream.Msg {
		c.fetched.Add(1)
		return &trackedMsg{Msg: m, c: c}
	}), nil
}

type trackedMsg struct {
	jetstream.Msg
	c    *trackedConsumer
	done atomic.Bool
}

func (m *trackedMsg) settle(err error) error {
	if m.done.CompareAndSwap(false, true) {
		m.c.settled.Add(1)
	}
	return err
}

func (m *trackedMsg) Ack() error                          { return m.settle(m.Msg.Ack()) }
func (m *trackedMsg) DoubleAck(ctx context.Context) error { return m.settle(m.Msg.DoubleAck(ctx)) }
func (m *trackedMsg) Nak() error                          { return m.settle(m.Msg.Nak()) }
func (m *trackedMsg) NakWithDelay(d time.Duration) error  { return m.settle(m.Msg.NakWithDelay(d)) }
func (m *trackedMsg) Term() error                         { return m.settle(m.Msg.Term()) }
func (m *trackedMsg) TermWithReason(r string) error       { return m.settle(m.Msg.TermWithReason(r)) }

// syncBuffer is a log sink safe for the consumer's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// interesting returns the last limit log lines, leaving out the successful posts.
func (b *syncBuffer) interesting(limit int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"message":"sent to ServiceNow"`) {
			lines = append(lines, sc.Text())
		}
	}
	if len(lines) > limit {
		lines = append([]string{fmt.Sprintf("(%d earlier lines left out)", len(lines)-limit)}, lines[len(lines)-limit:]...)
	}
	return strings.Join(lines, "\n")
}

// pause waits between two attempts at something that failed.
func pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}
