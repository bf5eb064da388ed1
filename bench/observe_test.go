package bench

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/topology"
)

// Whichever way the consumer pulls, the recorder sees each message it settles: a
// pull path the bench does not observe would leave a run waiting for settlements
// it never records.
func TestObservedConsumerRecordsEveryPullMethod(t *testing.T) {
	js := natstest.Connect(t, natstest.Start(t).URL())
	const n = 3
	wait := jetstream.FetchMaxWait(5 * time.Second)
	batch := func(b jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
		if err != nil {
			return nil, err
		}
		var msgs []jetstream.Msg
		for m := range b.Messages() {
			msgs = append(msgs, m)
		}
		return msgs, b.Error()
	}
	for _, tc := range []struct {
		name string
		pull func(c jetstream.Consumer) ([]jetstream.Msg, error)
	}{
		{"Fetch", func(c jetstream.Consumer) ([]jetstream.Msg, error) { return batch(c.Fetch(n, wait)) }},
		{"FetchNoWait", func(c jetstream.Consumer) ([]jetstream.Msg, error) { return batch(c.FetchNoWait(n)) }},
		{"FetchBytes", func(c jetstream.Consumer) ([]jetstream.Msg, error) {
			msgs, err := batch(c.FetchBytes(1<<20, jetstream.FetchMaxWait(300*time.Millisecond)))
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) {
				err = nil // the batch ended at its deadline, short of a megabyte
			}
			return msgs, err
		}},
		{"Next", func(c jetstream.Consumer) (msgs []jetstream.Msg, err error) {
			for range n {
				m, err := c.Next(wait)
				if err != nil {
					return msgs, err
				}
				msgs = append(msgs, m)
			}
			return msgs, nil
		}},
		{"Messages", func(c jetstream.Consumer) (msgs []jetstream.Msg, err error) {
			it, err := c.Messages()
			if err != nil {
				return nil, err
			}
			defer it.Stop()
			for range n {
				m, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
				if err != nil {
					return msgs, err
				}
				msgs = append(msgs, m)
			}
			return msgs, nil
		}},
		{"Consume", func(c jetstream.Consumer) (msgs []jetstream.Msg, err error) {
			got := make(chan jetstream.Msg, n)
			cc, err := c.Consume(func(m jetstream.Msg) { got <- m })
			if err != nil {
				return nil, err
			}
			defer cc.Stop()
			deadline := time.After(5 * time.Second)
			for range n {
				select {
				case m := <-got:
					msgs = append(msgs, m)
				case <-deadline:
					return msgs, errors.New("messages not consumed in time")
				}
			}
			return msgs, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			names := runNames(tc.name)
			topo, err := topology.Ensure(ctx, js, topology.Options{Names: names})
			if err != nil {
				t.Fatal(err)
			}
			in, err := encode(ionix.SampleItems(n, sampleSeed))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := publisher.New(js, names.SubjectPrefix).PublishAll(ctx, bytes.NewReader(in.ndjson), ionix.EventOpened, nil); err != nil {
				t.Fatal(err)
			}
			// The server counts a stored message as pending a moment after the
			// publish was acknowledged; FetchNoWait takes only what is pending.
			pending, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := waitConsumer(pending, topo.Consumer, func(i *jetstream.ConsumerInfo) bool { return i.NumPending == uint64(n) }); err != nil {
				t.Fatalf("%d messages not pending after 5s: %v", n, err)
			}
			rec := newRecorder(n)
			msgs, err := tc.pull(observedConsumer{Consumer: topo.Consumer, rec: rec})
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != n {
				t.Fatalf("pulled %d messages, want %d", len(msgs), n)
			}
			for _, m := range msgs {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if got := rec.count.Load(); got != n {
				t.Errorf("recorder saw %d settlements, want %d", got, n)
			}
		})
	}
}
