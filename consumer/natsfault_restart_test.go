package consumer_test

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
)

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
//
// The consumer's JetStream requests time out after 1s: the default, 5s, only makes
// the ledger writes take longer to give up. In the long outage a worker waits up to
// 2s for NATS before it returns each message pulled ahead, so the reserve is as
// large as the workers: the default (4 × concurrency) would add 6s of waiting, not
// another path.
func TestNATSRestartLosesNothing(t *testing.T) {
	t.Parallel()
	// The cases run at once: each mostly waits for its server and its consumer.
	var cases sync.WaitGroup
	for _, tc := range []struct {
		name      string
		long      bool
		pullAhead int // 0: the default
	}{{"quick restart", false, 0}, {"long outage", true, faultConcurrency}} {
		cases.Go(func() {
			t.Run(tc.name, func(t *testing.T) {
				const before, after, holdAt = 60, 30, 20
				node := natstest.StartNode(t, embedded.Options{})
				fr := newFaultRig(t, node.URL(), faultSetup{replicas: 1, requestTimeout: time.Second, pullAhead: tc.pullAhead})
				// The holdAt-th import and the next ones wait at the gate until the
				// server is down, filling every worker slot.
				fr.imp.holdFrom(holdAt)
				if err := fr.publish(10*time.Second, items("before", before)...); err != nil {
					t.Fatal(err)
				}
				testkit.WaitFor(t, 20*time.Second, "every worker to hold a post at the gate", func() bool {
					return fr.imp.heldCount() == faultConcurrency
				})
				atStop := fr.incidents()
				node.Stop()
				testkit.WaitFor(t, 10*time.Second, "the consumer to see NATS gone", func() bool { return fr.nc.Status() != nats.CONNECTED })
				held := fr.imp.open()
				// The held posts reach ServiceNow while NATS is down.
				testkit.WaitFor(t, 10*time.Second, "the held posts to be accepted", func() bool {
					return fr.imp.finishedCount() >= fr.imp.startedCount()
				})
				if fr.incidents() != atStop+held {
					t.Errorf("%d incidents after the %d held posts, want %d: the fault was not exercised", fr.incidents(), held, atStop+held)
				}
				if tc.long {
					testkit.WaitFor(t, 20*time.Second, "the consumer to settle every message it held", func() bool {
						return fr.msgs.inFlight() == 0
					})
				}
				t.Logf("server stopped at %d incidents; %d posts accepted while NATS was down; %d messages still held at the restart",
					atStop, held, fr.msgs.inFlight())

				node.Start(t)
				testkit.WaitFor(t, 10*time.Second, "the consumer to reconnect", func() bool { return fr.nc.Status() == nats.CONNECTED })
				if err := fr.publish(10*time.Second, items("after", after)...); err != nil {
					t.Fatal(err)
				}
				fr.waitAllDelivered(t, 20*time.Second)
				if n := len(fr.publishedIDs()); n != before+after {
					t.Fatalf("%d items published, want %d", n, before+after)
				}
				fr.checkNothingLost(t)
			})
		})
	}
	cases.Wait()
}
