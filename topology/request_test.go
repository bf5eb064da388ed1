package topology_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/topology"
)

// TestEnsuringAgainSendsNoUpdate: on a topology that is already in place, Ensure sends
// creates that the server answers with what exists, and no update: a replica that
// restarts while another one starts changes nothing and cannot meet an update.
func TestEnsuringAgainSendsNoUpdate(t *testing.T) {
	filtered := topology.Options{FilterSubjects: []string{"ionix.action_items.*.dns"}, MaxAckPending: 50, AckWait: time.Minute, MaxDeliver: 5}
	filteredR3 := filtered
	filteredR3.Replicas = 3
	tests := []struct {
		name    string
		servers int
		o       topology.Options
	}{
		{"one server, defaults", 1, topology.Options{}},
		{"one server, consumer options set", 1, filtered},
		{"three-node cluster, R3", 3, filteredR3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var url string
			if tc.servers == 1 {
				url = natstest.Start(t).URL()
			} else {
				url = natstest.StartCluster(t, tc.servers).URLs()
			}
			js := natstest.Connect(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := topology.Ensure(ctx, js, tc.o); err != nil {
				t.Fatal(err)
			}

			// Every JetStream API request of the second Ensure, seen by a subscriber.
			watcher, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.Close()
			requests := make(chan *nats.Msg, 100)
			sub, err := watcher.Subscribe("$JS.API.>", func(m *nats.Msg) { requests <- m })
			if err != nil {
				t.Fatal(err)
			}
			if err := watcher.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, err := topology.Ensure(ctx, js, tc.o); err != nil {
				t.Fatal(err)
			}
			// A request Ensure does not send, seen after all of Ensure's, marks the end.
			const marker = "$JS.API.STREAM.INFO." + topology.DefaultDLQStream
			if _, err := js.Stream(ctx, topology.DefaultDLQStream); err != nil {
				t.Fatal(err)
			}
			var seen []string
			for {
				var m *nats.Msg
				select {
				case m = <-requests:
				case <-ctx.Done():
					t.Fatalf("the requests of the second Ensure were not all seen: %v", seen)
				}
				if m.Subject == marker {
					break
				}
				seen = append(seen, m.Subject)
				// A consumer is updated on its create subject, with "action":"update".
				var consumerRequest struct {
					Action string `json:"action"`
				}
				_ = json.Unmarshal(m.Data, &consumerRequest)
				if strings.Contains(m.Subject, ".UPDATE.") || consumerRequest.Action == "update" {
					t.Errorf("second Ensure sent an update on %s", m.Subject)
				}
			}
			_ = sub.Unsubscribe()
			t.Logf("second Ensure sent %v", seen)
		})
	}
}

// TestUnansweredRequestEndsWithinItsOwnTimeout: a JetStream API that never answers
// costs Ensure one request timeout, not the caller's whole deadline, and the error says
// so (ErrUnanswered), which Starting reports for the caller to retry.
func TestUnansweredRequestEndsWithinItsOwnTimeout(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A responder that takes every request under its prefix and answers none.
	if _, err := nc.Subscribe("silent.api.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.NewWithAPIPrefix(nc, "silent.api")
	if err != nil {
		t.Fatal(err)
	}
	const requestTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	_, err = topology.Ensure(ctx, js, topology.Options{RequestTimeout: requestTimeout})
	took := time.Since(began)
	if !errors.Is(err, topology.ErrUnanswered) || !topology.Starting(err) {
		t.Fatalf("Ensure against a silent API: %v after %s, want ErrUnanswered, a reason to retry", err, took)
	}
	if took > 5*requestTimeout {
		t.Errorf("Ensure gave up after %s, want about one request timeout (%s)", took, requestTimeout)
	}
	t.Log(err)
}
