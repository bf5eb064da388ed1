package topology_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/topology"
)

func connect(t *testing.T) jetstream.JetStream {
	t.Helper()
	return natstest.Connect(t, natstest.Start(t).URL())
}

func TestEnsureCreatesTheDefaultTopology(t *testing.T) {
	js := connect(t)
	ctx := context.Background()
	if _, err := topology.Ensure(ctx, js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	si, err := js.Stream(ctx, "IONIX_ACTION_ITEMS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := si.CachedInfo().Config
	if !slices.Equal(cfg.Subjects, []string{"ionix.action_items.>"}) || cfg.Retention != jetstream.LimitsPolicy ||
		cfg.Storage != jetstream.FileStorage || cfg.MaxAge != topology.StreamMaxAge || cfg.Duplicates != topology.DuplicateWindow {
		t.Errorf("stream config = %+v", cfg)
	}
	ci, err := js.Consumer(ctx, "IONIX_ACTION_ITEMS", "servicenow")
	if err != nil {
		t.Fatal(err)
	}
	cc := ci.CachedInfo().Config
	if cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != topology.AckWait || cc.Durable != "servicenow" {
		t.Errorf("consumer config = %+v", cc)
	}
	if _, err := js.Stream(ctx, "IONIX_DLQ"); err != nil {
		t.Errorf("dead-letter stream: %v", err)
	}
	for _, b := range []string{"ionix_tickets", "ionix_budget"} {
		if _, err := js.KeyValue(ctx, b); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
}

func TestEnsureIsIdempotentAndUpdatesTheCategoryFilter(t *testing.T) {
	js := connect(t)
	ctx := context.Background()
	o := topology.Options{FilterSubjects: []string{"ionix.action_items.*.pki"}}
	first, err := topology.Ensure(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "ionix.action_items.opened.pki", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// The same call again, from another process, changes nothing and loses nothing.
	if _, err := topology.Ensure(ctx, js, o); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	o.FilterSubjects = []string{"ionix.action_items.*.pki", "ionix.action_items.*.dns"}
	if _, err := topology.Ensure(ctx, js, o); err != nil {
		t.Fatalf("Ensure with a new filter: %v", err)
	}
	info, err := first.Consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Config.FilterSubjects, o.FilterSubjects) {
		t.Errorf("filter subjects = %v, want %v", info.Config.FilterSubjects, o.FilterSubjects)
	}
	if info.NumPending != 1 {
		t.Errorf("pending = %d after re-ensuring, want the 1 message published before", info.NumPending)
	}
}

func TestNamesAreConfigurable(t *testing.T) {
	js := connect(t)
	ctx := context.Background()
	names := topology.Names{Stream: "ACME_ITEMS", Consumer: "snow-acme"}
	topo, err := topology.Ensure(ctx, js, topology.Options{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	if topo.Names.Stream != "ACME_ITEMS" || topo.Names.DLQStream != topology.DefaultDLQStream {
		t.Errorf("names = %+v", topo.Names)
	}
	if _, err := js.Consumer(ctx, "ACME_ITEMS", "snow-acme"); err != nil {
		t.Errorf("consumer under the configured names: %v", err)
	}
}
