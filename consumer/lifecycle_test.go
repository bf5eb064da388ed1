package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// durable creates another durable consumer on the rig's stream with the given
// settings (the rig's own has the defaults).
func (r *rig) durable(t *testing.T, name string, ackWait time.Duration, maxDeliver int) jetstream.Consumer {
	t.Helper()
	names := r.topo.Names
	names.Consumer = name
	c, err := topology.EnsureConsumer(context.Background(), r.js, topology.Options{Names: names, AckWait: ackWait, MaxDeliver: maxDeliver})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deadLetters lists the dead-letter stream.
func (r *rig) deadLetters(t *testing.T) []dlq.Letter {
	t.Helper()
	dls, err := dlq.New(r.js, r.topo.Names).List(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

// setLatency makes every ServiceNow answer take d.
func (r *rig) setLatency(t *testing.T, d time.Duration) {
	t.Helper()
	cfg := r.sim.Config()
	cfg.Latency = emulator.Duration(d)
	if err := r.sim.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

// TestLastDeliveryFailureIsDeadLettered: with MaxDeliver, an item ServiceNow keeps
// failing ends in the dead-letter stream, named as such, while the rest flows.
func TestLastDeliveryFailureIsDeadLettered(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	cons := r.durable(t, "maxdeliver", 0, 2)
	bad := item("md-1", "Exposed admin panel", "Web", 8, "2026-10-01T08:00:00Z")
	d := r.deps(cons)
	d.Importer = hookImporter{inner: r.snow, hook: func(_ context.Context, title string) error {
		if title == bad.Title {
			return errUnavailable
		}
		return nil
	}}
	r.publish(t, append(items("md-ok", 3), bad)...)
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), MaxDeliver: 2, MaxBackoff: 100 * time.Millisecond, FetchWait: 300 * time.Millisecond})
	testkit.WaitFor(t, 15*time.Second, "the failing item in the dead-letter stream", func() bool { return c.Stats().DeadLettered == 1 })

	dls := r.deadLetters(t)
	if len(dls) != 1 || dls[0].ID != "md-1" {
		t.Fatalf("dead letters %+v, want md-1 alone", dls)
	}
	if want := consumer.ReasonMaxDeliver + " after 2 deliveries"; !strings.HasPrefix(dls[0].Reason, want) || !strings.Contains(dls[0].Reason, "instance unavailable") {
		t.Errorf("reason %q: want it to start %q and name the last error", dls[0].Reason, want)
	}
	if n := len(r.sim.Incidents()); n != 3 {
		t.Errorf("%d incidents, want the 3 good items", n)
	}
}

// TestMaxDeliveriesRunOutWithoutAnAck: a replica that dies holding a message on its
// last allowed delivery never acks or naks it; the server gives up silently except
// for an advisory. The consumer turns that advisory into a dead letter.
func TestMaxDeliveriesRunOutWithoutAnAck(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	cons := r.durable(t, "advisory", time.Second, 1)
	lost := item("adv-1", "Weak TLS cipher on mail.example.com", "PKI", 6, "2026-10-01T08:00:00Z")
	r.publish(t, lost)
	// A "replica" takes the message and dies without a word.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	r.publish(t, items("adv-ok", 2)...)
	c := r.run(t, r.deps(cons), consumer.Options{Mapping: mapping.DefaultOptions(), MaxDeliver: 1, FetchWait: 300 * time.Millisecond})
	testkit.WaitFor(t, 15*time.Second, "the abandoned message in the dead-letter stream", func() bool { return c.Stats().DeadLettered == 1 })

	dls := r.deadLetters(t)
	if len(dls) != 1 || dls[0].ID != "adv-1" || dls[0].StreamSeq != 1 {
		t.Fatalf("dead letters %+v, want adv-1 (stream sequence 1)", dls)
	}
	if !strings.Contains(dls[0].Reason, "not acknowledged in time") {
		t.Errorf("reason %q does not say the message timed out", dls[0].Reason)
	}
	testkit.WaitFor(t, 10*time.Second, "the other items", func() bool { return len(r.sim.Incidents()) == 2 })
}

// TestSlowPostKeepsItsMessage: a post that outlasts AckWait marks its message in
// progress, so the server does not hand it to another worker meanwhile.
func TestSlowPostKeepsItsMessage(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	cons := r.durable(t, "slow", time.Second, 0)
	if err := r.snow.Authenticate(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.setLatency(t, 2500*time.Millisecond)
	r.publish(t, item("slow-1", "Subdomain takeover risk", "DNS", 9, "2026-10-01T08:00:00Z"))
	c := r.run(t, r.deps(cons), consumer.Options{Mapping: mapping.DefaultOptions(), AckWait: time.Second, FetchWait: 300 * time.Millisecond})
	testkit.WaitFor(t, 15*time.Second, "the incident", func() bool { return c.Stats().Created == 1 })
	if s := c.Stats(); s.Received != 1 {
		t.Errorf("the message was delivered %d times during a 2.5s post with AckWait 1s; want once", s.Received)
	}
	if n := r.sim.ImportCount(); n != 1 {
		t.Errorf("%d imports, want 1", n)
	}
}

// TestShutdownFinishesOrReturnsWhatIsInFlight: when Run's context ends, posts in
// flight finish within DrainTimeout and are acked; posts that cannot finish in
// time are cancelled and their messages come back for the next consumer.
func TestShutdownFinishesOrReturnsWhatIsInFlight(t *testing.T) {
	t.Parallel()
	// The cases run at once: each mostly waits out its slow posts.
	var cases sync.WaitGroup
	for _, tt := range []struct {
		name      string
		latency   time.Duration
		drain     time.Duration
		finishing bool // posts finish before Run returns
	}{
		{"posts finish within the deadline", 700 * time.Millisecond, 10 * time.Second, true},
		{"posts outlast the deadline", 5 * time.Second, 300 * time.Millisecond, false},
	} {
		cases.Go(func() {
			t.Run(tt.name, func(t *testing.T) {
				r := newRig(t, mapping.Filter{}, emulator.Options{})
				if err := r.snow.Authenticate(context.Background()); err != nil {
					t.Fatal(err)
				}
				r.setLatency(t, tt.latency)
				r.publish(t, items("sd", 4)...)
				c, err := consumer.New(r.deps(r.topo.Consumer), consumer.Options{Mapping: mapping.DefaultOptions(), DrainTimeout: tt.drain, FetchWait: 300 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- c.Run(ctx) }()
				testkit.WaitFor(t, 10*time.Second, "four posts in flight", func() bool { return c.Stats().Received == 4 })
				stopped := time.Now()
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("Run: %v", err)
					}
				case <-time.After(tt.drain + 5*time.Second):
					t.Fatalf("Run did not return within the drain timeout %s", tt.drain)
				}
				if tt.finishing {
					if s := c.Stats(); s.Created != 4 {
						t.Errorf("%d created before Run returned, want the 4 in flight", s.Created)
					}
					r.waitDrained(t)
					return
				}
				if waited := time.Since(stopped); waited > tt.latency {
					t.Errorf("Run took %s to return; the %s deadline was not kept", waited, tt.drain)
				}
				// The cancelled posts' messages are returned; the next consumer sends them.
				r.setLatency(t, 0)
				r.start(t, r.topo.Consumer, mapping.Filter{})
				r.waitDrained(t)
				for i := range 4 {
					if in := incidentOf(t, r.sim, items("sd", 4)[i].ID); in.Inserts != 1 {
						t.Errorf("%s inserted %d times", in.Number, in.Inserts)
					}
				}
			})
		})
	}
	cases.Wait()
}

// TestMessageWaitingForItsTurnIsKeptAlive: a second version of an item, waiting while
// the first one's post outlasts AckWait, is marked in progress too: it is delivered
// once and posted once.
func TestMessageWaitingForItsTurnIsKeptAlive(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	cons := r.durable(t, "turn", time.Second, 0)
	v1 := item("turn-1", "Open Redis on cache.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	v2 := v1
	v2.Title, v2.Urgency = v1.Title+" (exploited)", 9.5
	// The first version's post takes 1.6s; the second's is quick.
	d := r.deps(cons)
	d.Importer = hookImporter{inner: r.snow, hook: func(ctx context.Context, title string) error {
		if title != v1.Title {
			return nil
		}
		slow := time.NewTimer(1600 * time.Millisecond)
		defer slow.Stop()
		select {
		case <-slow.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	r.publish(t, v1, v2)
	c := r.run(t, d, consumer.Options{Concurrency: 2, Mapping: mapping.DefaultOptions(), AckWait: time.Second, FetchWait: 300 * time.Millisecond})
	testkit.WaitFor(t, 15*time.Second, "both versions posted", func() bool { return c.Stats().Created == 1 && c.Stats().Updated == 1 })
	if s := c.Stats(); s.Received != 2 {
		t.Errorf("%d deliveries while the first post took 1.6s with AckWait 1s; want 2 (each version once)", s.Received)
	}
	if n := r.sim.ImportCount(); n != 2 {
		t.Errorf("%d imports, want 2", n)
	}
}

// TestNaksAtShutdownSurviveTheServerStopping: a process with the embedded server
// stops it right after the consumer returns. The naks of the posts cancelled at
// shutdown must have been processed by then (confirmed), so after the server comes
// back the messages are redelivered within seconds, not after AckWait (a minute).
func TestNaksAtShutdownSurviveTheServerStopping(t *testing.T) {
	t.Parallel()
	// The rounds run at once: each mostly waits for its server to stop and start.
	var rounds sync.WaitGroup
	for round := range 3 {
		rounds.Go(func() {
			t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
				node := natstest.StartNode(t, embedded.Options{})
				nc, err := nats.Connect(node.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(nc.Close)
				js, err := jetstream.New(nc)
				if err != nil {
					t.Fatal(err)
				}
				topo, err := topology.Ensure(context.Background(), js, topology.Options{AckWait: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				r := newRig(t, mapping.Filter{}, emulator.Options{})
				r.js, r.topo, r.pub = js, topo, publisher.New(js, "")
				if err := r.snow.Authenticate(context.Background()); err != nil {
					t.Fatal(err)
				}
				r.setLatency(t, 3*time.Second)
				r.publish(t, items(fmt.Sprintf("sv%d", round), 4)...)
				o := consumer.Options{Mapping: mapping.DefaultOptions(), DrainTimeout: 200 * time.Millisecond, FetchWait: 300 * time.Millisecond, AckWait: time.Minute}
				c, stop := r.launch(t, r.deps(topo.Consumer), o)
				testkit.WaitFor(t, 10*time.Second, "four posts in flight", func() bool { return c.Stats().Received == 4 })
				if err := stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				node.Stop() // at once, as a process exiting stops its embedded server
				r.setLatency(t, 0)
				node.Start(t)
				testkit.WaitFor(t, 10*time.Second, "reconnected", func() bool { return nc.Status() == nats.CONNECTED })
				// JetStream may still be recovering its streams: a request can go
				// unanswered for a moment after the restart.
				var cons jetstream.Consumer
				testkit.WaitFor(t, 20*time.Second, "the durable consumer after the restart", func() bool {
					// An unanswered attempt is retried after a second, not the default 5.
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					cons, err = topology.EnsureConsumer(ctx, js, topology.Options{AckWait: time.Minute})
					return err == nil
				})
				next := r.run(t, r.deps(cons), o)
				testkit.WaitFor(t, 15*time.Second, "the cancelled posts' messages redelivered after the server restart (AckWait is 1m)", func() bool {
					return next.Stats().Received >= 4
				})
			})
		})
	}
	rounds.Wait()
}
