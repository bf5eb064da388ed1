package main

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/topology"
)

// testRequestTimeout bounds each JetStream request in these tests; the default (5s)
// would only make a request left unanswered cost more.
const testRequestTimeout = time.Second

// TestReplicasStartingTogetherOnAFreshCluster: three consume replicas started at the
// same instant on a fresh three-node cluster with nats.replicas 3 (what the Kubernetes
// base does) all set up the topology. nats-server leaves requests unanswered when
// replicas create the same R3 stream at once; a replica gives up on such a request,
// not on the whole setup, and asks again.
func TestReplicasStartingTogetherOnAFreshCluster(t *testing.T) {
	const replicas = 3
	cluster := natstest.StartCluster(t, 3)
	o := topology.Options{Replicas: 3, RequestTimeout: testRequestTimeout}

	// Each replica on its own connection, as separate processes would be.
	js := make([]jetstream.JetStream, replicas)
	for i := range js {
		js[i] = natstest.Connect(t, cluster.URLs())
	}
	start := make(chan struct{})
	errs := make([]error, replicas)
	took := make([]time.Duration, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			<-start
			began := time.Now()
			_, errs[i] = ensureTopology(context.Background(), js[i], o)
			took[i] = time.Since(began)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v after %s", i, err, took[i].Round(time.Millisecond))
		} else {
			t.Logf("replica %d: topology set up in %s", i, took[i].Round(time.Millisecond))
		}
	}
}

// TestEnsureTopologyAsksAgainAfterAnUnansweredRequest: a JetStream API that leaves
// one request unanswered costs one request timeout, after which ensureTopology asks
// again and sets the topology up; it does not wait out its whole deadline.
func TestEnsureTopologyAsksAgainAfterAnUnansweredRequest(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// In front of the JetStream API: the first request is dropped, the others passed on.
	const prefix = "unanswered-once."
	var requests atomic.Int32
	_, err = nc.Subscribe(prefix+">", func(m *nats.Msg) {
		if requests.Add(1) == 1 {
			return
		}
		resp, err := nc.Request("$JS.API."+strings.TrimPrefix(m.Subject, prefix), m.Data, 5*time.Second)
		if err != nil {
			t.Errorf("pass %s on: %v", m.Subject, err)
			return
		}
		_ = m.Respond(resp.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.NewWithAPIPrefix(nc, prefix)
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	if _, err := ensureTopology(context.Background(), js, topology.Options{RequestTimeout: testRequestTimeout}); err != nil {
		t.Fatalf("after %s: %v", time.Since(began).Round(time.Millisecond), err)
	}
	if took := time.Since(began); took > 5*testRequestTimeout {
		t.Errorf("the topology was set up after %s, want about one request timeout (%s)", took, testRequestTimeout)
	}
	if n := requests.Load(); n < 2 {
		t.Errorf("%d requests reached the API, want the unanswered one and more", n)
	}
}
