package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
)

// TestShutdownNakSurvivesTheServerStopping: fetchOnce returns the
// messages it gets after the context ended with c.nak(msg, 0). The server answers a
// "-NAK" without delay at once, but keeps it only in memory (its redelivery queue):
// an embedded server stopped right after restarts with the message pending since its
// delivery, and redelivers it only after AckWait. A nak with a delay is written to the
// consumer's store and survives.
func TestShutdownNakSurvivesTheServerStopping(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, time.Nanosecond} {
		t.Run(delay.String(), func(t *testing.T) {
			node := natstest.StartNode(t, embedded.Options{})
			nc, err := nats.Connect(node.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
				t.Fatal(err)
			}
			cfg := jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute}
			cons, err := js.CreateOrUpdateConsumer(ctx, "S", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "s.x", []byte("x")); err != nil {
				t.Fatal(err)
			}
			b, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var m jetstream.Msg
			for msg := range b.Messages() {
				m = msg
			}
			if m == nil {
				t.Fatal("no message")
			}
			c := &Consumer{d: Deps{JetStream: js}}
			c.stopping.Store(true)
			if err := c.nak(m, delay); err != nil {
				t.Fatalf("nak: %v", err)
			}
			node.Stop() // as a process stops its embedded server right after Run returns
			node.Start(t)
			deadline := time.Now().Add(10 * time.Second)
			for {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				cons, err = js.CreateOrUpdateConsumer(cctx, "S", cfg)
				cancel()
				if err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for time.Now().Before(deadline) && got == 0 {
				b, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					continue
				}
				for msg := range b.Messages() {
					got++
					_ = msg.Ack()
				}
			}
			if got == 0 {
				t.Errorf("nak with delay %v: not redelivered within 10 s of the restart (AckWait 1m)", delay)
			}
		})
	}
}
