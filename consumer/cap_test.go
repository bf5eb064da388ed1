package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// TestGlobalCapAcrossThreeReplicas is the acceptance test of the cap (SPEC §6): three
// consumer replicas, each with its own NATS connection, ServiceNow client and
// budget.KV over the one budget bucket, drain a backlog larger than the cap. What
// ServiceNow saw must never exceed max import requests in any sliding window, and
// the cap must be used to at least 95 % while the backlog waits.
//
// Not parallel: the budget's margin (100 ms) covers the delay from a grant to
// ServiceNow only while no other test loads the machine.
func TestGlobalCapAcrossThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 9 s")
	}
	const (
		replicas = 3
		limit    = 30
		window   = 4 * time.Second
		backlog  = 3 * limit // the last window's worth still waits after two windows
		waiting  = 2         // windows from the first request during which items still wait
	)
	srv := natstest.Start(t)
	sim := emulator.New(emulator.Options{})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)

	// The backlog is published before any replica runs.
	js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	if _, err := topology.Ensure(ctx, js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	pub := publisher.New(js, "")
	for i := range backlog {
		it := ionix.ActionItem{
			ID: fmt.Sprintf("cap-%03d", i), Title: fmt.Sprintf("Finding %d", i), Type: "Vulnerability",
			Urgency: 8, FirstOpenedAt: "2026-01-01T00:00:00Z", Asset: fmt.Sprintf("host-%d.example.com", i),
		}
		raw, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, raw, it, ionix.EventOpened); err != nil {
			t.Fatal(err)
		}
	}

	for range replicas {
		capReplica(t, srv.URL(), hs.URL, limit, window)
	}
	isImport := func(r emulator.Request) bool { return strings.HasPrefix(r.Path, "/api/now/import/") }
	testkit.WaitFor(t, 30*time.Second, "every item to be posted", func() bool { return sim.ImportCount() >= backlog })

	var at []time.Time
	for _, r := range sim.Requests() {
		if isImport(r) {
			at = append(at, r.At)
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	if len(at) != backlog {
		t.Fatalf("ServiceNow saw %d import requests, want %d", len(at), backlog)
	}
	if n := len(sim.Incidents()); n != backlog {
		t.Errorf("%d incidents, want %d", n, backlog)
	}

	// The cap: any limit+1 requests span at least a window.
	tightest := time.Duration(1<<63 - 1)
	for i := 0; i+limit < len(at); i++ {
		gap := at[i+limit].Sub(at[i])
		tightest = min(tightest, gap)
		if gap < window {
			t.Errorf("requests %d..%d (%s .. %s) are %s apart: %d requests within a window of %s, cap %d",
				i, i+limit, at[i].Format("15:04:05.000"), at[i+limit].Format("15:04:05.000"), gap, limit+1, window, limit)
		}
	}

	// Utilisation while the backlog waits (its first two windows): at least 95 % of
	// the cap in each window from the first request, and limit requests take no
	// longer than window/0.95 on average (the sliding-window throughput).
	for k := range waiting {
		from, to := at[0].Add(time.Duration(k)*window), at[0].Add(time.Duration(k+1)*window)
		n := 0
		for _, a := range at {
			if !a.Before(from) && a.Before(to) {
				n++
			}
		}
		if float64(n) < 0.95*limit {
			t.Errorf("window %d from the first request saw %d requests, want at least %.1f (95%% of %d)", k, n, 0.95*limit, limit)
		}
	}
	var sum time.Duration
	for i := range (waiting - 1) * limit {
		sum += at[i+limit].Sub(at[i])
	}
	mean := sum / ((waiting - 1) * limit)
	if util := float64(window) / float64(mean); util < 0.95 {
		t.Errorf("%d requests took %s on average: the cap is used to %.1f%%, want at least 95%%", limit, mean, 100*util)
	}
	t.Logf("tightest %d-request span %s (window %s); mean span %s, utilisation %.1f%%",
		limit+1, tightest, window, mean, 100*float64(window)/float64(mean))
}

// capReplica runs one consumer replica as its own process would: its own NATS
// connection, topology handles, ServiceNow client and budget.
func capReplica(t *testing.T, natsURL, snowURL string, limit int, window time.Duration) {
	t.Helper()
	// The margin covers the delay from a grant to ServiceNow (a few ms here, more
	// under -race on a loaded machine) and costs 2.5 % of the cap.
	startReplica(t, natsURL, snowURL, replicaSpec{limit: limit, window: window,
		budget: []budget.Option{budget.WithMargin(100 * time.Millisecond)},
		options: consumer.Options{Concurrency: 4, Filter: mapping.Filter{UrgencyThreshold: 1},
			Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond}})
}

// replicaSpec is a replica startReplica runs: its cap and budget options, its
// importer (wrap, nil: the ServiceNow client), its options, and with express the
// stream and the claims the express lane needs, as consume gives them.
type replicaSpec struct {
	limit   int
	window  time.Duration
	budget  []budget.Option
	wrap    func(consumer.Importer) consumer.Importer
	options consumer.Options
	express bool
}

// startReplica runs one consumer replica as its own process would: its own NATS
// connection, topology handles, ServiceNow client and budget over the shared
// buckets; it stops at the end of the test.
func startReplica(t testing.TB, natsURL, snowURL string, s replicaSpec) {
	t.Helper()
	js := natstest.Connect(t, natsURL)
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snow, err := servicenow.New(servicenow.Config{
		InstanceURL: snowURL, ClientID: "ionix", ClientSecret: "ionix", Username: "ionix", Password: "ionix",
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	b, err := budget.NewKV(topo.Budget, s.limit, s.window, s.budget...)
	if err != nil {
		t.Fatal(err)
	}
	var imp consumer.Importer = snow
	if s.wrap != nil {
		imp = s.wrap(snow)
	}
	d := consumer.Deps{
		Consumer:    topo.Consumer,
		Importer:    imp,
		Ledger:      ledger.New(topo.Tickets),
		JetStream:   js,
		DeadLetters: dlq.New(js, topo.Names),
		Budget:      b,
		Log:         zerolog.Nop(),
	}
	if s.express {
		d.Stream, d.Claims = topo.Stream, &consumer.Claims{KV: topo.Budget, Prefix: "ahead.window."}
	}
	c, err := consumer.New(d, s.options)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
