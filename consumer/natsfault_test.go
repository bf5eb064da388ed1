package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
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
	log  *testkit.Buffer
	c    *consumer.Consumer
	// done receives Run's result; Run must not return before the test ends.
	done chan error

	mu        sync.Mutex
	published []string // ids published (acknowledged by the stream)
	attempts  int      // publish attempts, retries included
}

// faultSetup is what a fault test chooses about its rig.
type faultSetup struct {
	replicas int // of every stream and bucket
	// requestTimeout bounds the consumer's JetStream requests when their context
	// does not (0: the client's default, 5s).
	requestTimeout time.Duration
	pullAhead      int // the consumer's PullAhead (0: its default)
}

// newFaultRig connects to urls (comma-separated) and starts the consumer. Ensuring
// the topology is retried: a cluster may still be electing leaders.
func newFaultRig(t *testing.T, urls string, setup faultSetup) *faultRig {
	t.Helper()
	fr := &faultRig{log: &testkit.Buffer{}, done: make(chan error, 1)}
	logger := zerolog.New(fr.log).With().Timestamp().Logger()
	// Registered first, so it runs last: after the consumer has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consumer log (posts that went through omitted):\n%s", interesting(fr.log.String(), 300))
		}
	})
	fr.nc = faultConn(t, urls, "consumer", logger)
	var jsOpts []jetstream.JetStreamOpt
	if setup.requestTimeout > 0 {
		jsOpts = append(jsOpts, jetstream.WithDefaultTimeout(setup.requestTimeout))
	}
	js, err := jetstream.New(fr.nc, jsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	pubNC := faultConn(t, urls, "publisher", logger)
	pubJS, err := jetstream.New(pubNC)
	if err != nil {
		t.Fatal(err)
	}

	var topo *topology.Topology
	testkit.WaitFor(t, 30*time.Second, "the topology to be created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		topo, err = topology.Ensure(ctx, js, topology.Options{Replicas: setup.replicas, AckWait: faultAckWait})
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
		Ledger:      ledger.New(topo.Tickets),
		JetStream:   js,
		DeadLetters: dlq.New(js, topo.Names),
		Stream:      topo.Stream,
		Log:         logger,
	}, consumer.Options{
		Filter:      mapping.Filter{UrgencyThreshold: 1},
		Mapping:     mapping.DefaultOptions(),
		Concurrency: faultConcurrency,
		PullAhead:   setup.pullAhead,
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
	testkit.WaitForDiag(t, timeout, fmt.Sprintf("%d incidents", n), func() bool { return fr.incidents() >= n }, func() string {
		return fmt.Sprintf("%d incidents (published items without one: %v); consumer stats %+v; Run running: %v",
			fr.incidents(), fr.missing(), fr.c.Stats(), fr.running())
	})
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
	var state string // the durable consumer's, at the last look
	testkit.WaitForDiag(t, timeout, fmt.Sprintf("all %d items delivered", want), func() bool {
		n := fr.incidents()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		info, err := fr.topo.Consumer.Info(ctx)
		if err != nil {
			state = fmt.Sprintf("consumer info error: %v", err)
			return false
		}
		state = fmt.Sprintf("pending %d, ack pending %d, redelivered %d, delivered stream seq %d, ack floor stream seq %d",
			info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered.Stream, info.AckFloor.Stream)
		return n >= want && info.NumPending == 0 && info.NumAckPending == 0
	}, func() string {
		return fmt.Sprintf("%d of %d items have an incident (missing %v); %s; consumer stats %+v; Run running: %v",
			fr.incidents(), want, fr.missing(), state, fr.c.Stats(), fr.running())
	})
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

// pause waits between two attempts at something that failed.
func pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}
