package main

// The tenant fleet in the process (consume's parts, a real nats-server, emulators):
// isolation of the single-tenant form from tenants' traffic, a slow tenant's stop,
// connections the server closes, shutdown during a reconcile, message ids, halts.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"

	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/fairshare"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/metrics"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/secrets"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

type rvInstance struct {
	id  string
	sim *emulator.Server
	url string
	// hold, when set, makes imports wait until it is closed.
	hold    atomic.Pointer[chan struct{}]
	imports atomic.Int64
	// delay, when set, is how long each import takes at least; inFlight, when
	// set, counts the imports being answered (shared by instances to count a
	// process's posts).
	delay    atomic.Int64
	inFlight atomic.Pointer[inFlight]
}

// inFlight counts requests being answered, the most at once, and which instance
// each one reached, in the order they came.
type inFlight struct {
	now, most atomic.Int64
	mu        sync.Mutex
	order     []string
}

func (f *inFlight) enter(instance string) {
	n := f.now.Add(1)
	for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
	}
	f.mu.Lock()
	f.order = append(f.order, instance)
	f.mu.Unlock()
}

// arrivals is the instances the requests reached, in order.
func (f *inFlight) arrivals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.order)
}

func (f *inFlight) leave() { f.now.Add(-1) }

func rvNewInstance(t *testing.T, id string) *rvInstance {
	t.Helper()
	in := &rvInstance{id: id}
	in.sim = emulator.New(emulator.Options{ClientID: id + "-client", ClientSecret: "cs-" + id, Username: "svc." + id, Password: "pw-" + id})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/api/now/import/") {
			in.imports.Add(1)
			if f := in.inFlight.Load(); f != nil {
				f.enter(id)
				defer f.leave()
			}
			if h := in.hold.Load(); h != nil {
				select {
				case <-*h:
				case <-r.Context().Done():
				}
			}
			if d := time.Duration(in.delay.Load()); d > 0 {
				time.Sleep(d) // the instance's own latency
			}
		}
		in.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	in.url = srv.URL
	return in
}

func (in *rvInstance) settings(categories ...string) tenant.Settings {
	st := tenant.FromConfig(config.Default())
	st.ServiceNow.InstanceURL, st.ServiceNow.ClientID, st.ServiceNow.ClientSecret = in.url, in.id+"-client", "cs-"+in.id
	st.ServiceNow.Username, st.ServiceNow.Password = "svc."+in.id, "pw-"+in.id
	st.Filter = tenant.Filter{Categories: categories, UrgencyThreshold: 1}
	st.IONIX = tenant.IONIX{}
	return st
}

func (in *rvInstance) snowConfig() config.ServiceNow {
	c := config.Default().ServiceNow
	c.InstanceURL, c.ClientID, c.ClientSecret, c.Username, c.Password = in.url, in.id+"-client", "cs-"+in.id, "svc."+in.id, "pw-"+in.id
	return c
}

type rvHarness struct {
	t      *testing.T
	cfg    config.Config
	conn   *natsConn
	store  *tenant.Store
	bucket jetstream.KeyValue
	logs   *testkit.Buffer
	log    zerolog.Logger
}

func rvStart(t *testing.T) *rvHarness {
	t.Helper()
	return rvStartAt(t, natstest.Start(t).URL())
}

// rvStartAt is rvStart with the NATS server at natsURL (a proxy in front of one).
func rvStartAt(t *testing.T, natsURL string) *rvHarness {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keyset.json")
	keys, err := secrets.Init(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.NATS.URL = natsURL
	cfg.Secrets.KeysetFile = keyPath
	logs := &testkit.Buffer{}
	log := zerolog.New(logs)
	conn, err := connectNATS(cfg.NATS, log, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx := context.Background()
	bucket, err := topology.EnsureIntegrations(ctx, conn.js, topologyOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return &rvHarness{t: t, cfg: cfg, conn: conn, bucket: bucket, logs: logs, log: log,
		store: tenant.NewStore(bucket, keys, secrets.AssociatedData)}
}

func (h *rvHarness) put(id string, st tenant.Settings, active bool) {
	h.t.Helper()
	ctx := context.Background()
	if _, err := h.store.Put(ctx, id, st, nil); err != nil {
		h.t.Fatal(err)
	}
	if active {
		if _, err := h.store.SetActive(ctx, id, true); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *rvHarness) setActive(id string, active bool) {
	h.t.Helper()
	if _, err := h.store.SetActive(context.Background(), id, active); err != nil {
		h.t.Fatal(err)
	}
}

// publish publishes items of tenant tid ("" the single-tenant form) as published by
// `ionixsnow publish --tenant`.
func (h *rvHarness) publish(tid string, ev ionix.Event, typ string, ids ...string) {
	h.t.Helper()
	names := topologyOptions(h.cfg).Names.ForTenant(tid)
	if _, err := topology.EnsureStream(context.Background(), h.conn.js, topology.Options{Names: topology.DefaultNames()}); err != nil {
		h.t.Fatal(err)
	}
	p := publisher.ForTenant(h.conn.js, names.ItemSubjectPrefix(), tid)
	for _, id := range ids {
		it := map[string]any{"id": id, "title": "item of " + tid + ": " + id, "type": typ, "urgency": 8.0,
			"first_opened_at": "2026-11-20T10:15:00Z", "asset": id + ".example.com"}
		raw, _ := json.Marshal(it)
		item, err := ionix.Decode(raw)
		if err != nil {
			h.t.Fatal(err)
		}
		if _, err := p.Publish(context.Background(), raw, item, ev); err != nil {
			h.t.Fatal(err)
		}
	}
}

// serve runs what consume runs: the single-tenant pipeline when single is set, and the
// fleet. It returns a stop that cancels and waits, reporting runServed's error.
func (h *rvHarness) serve(single *rvInstance) (stop func() error) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := h.cfg
	m := metrics.New()
	slots := fairshare.New(cfg.Consumer.ProcessConcurrency)
	var p pipeline
	if single != nil {
		cfg.ServiceNow = single.snowConfig()
		snow, err := servicenow.New(cfg.ServiceNow.Client(), h.log)
		if err != nil {
			h.t.Fatal(err)
		}
		carried := newLive().carried(snow)
		carried.Slots = slots.For(tenant.Default)
		if p, err = newPipeline(ctx, h.conn, cfg, m.Importer(snow), carried, h.log); err != nil {
			h.t.Fatal(err)
		}
	}
	fleet, err := newTenantFleet(cfg, m, slots, h.log)
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runServed(ctx, h.conn, p, single != nil, fleet) }()
	var once atomic.Bool
	stop = func() error {
		if !once.CompareAndSwap(false, true) {
			return nil
		}
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return fmt.Errorf("runServed did not end")
		}
	}
	h.t.Cleanup(func() { _ = stop() })
	return stop
}

// The single-tenant consumer filters exactly <event>.<category>: a backlog of another
// tenant's items (one this deployment does not even serve) neither delays its items
// nor spends its budget.
func TestSingleTenantFormIsNotHeldUpByATenantsBacklog(t *testing.T) {
	t.Parallel()
	h := rvStart(t)
	single := rvNewInstance(t, "single")
	h.publish("", ionix.EventOpened, "Vulnerability", "warm-up")
	stop := h.serve(single)
	testkit.WaitFor(t, 20*time.Second, "warm-up sent", func() bool { return len(single.sim.Incidents()) >= 1 })

	start := time.Now()
	h.publish("", ionix.EventOpened, "Vulnerability", "alone")
	testkit.WaitFor(t, 20*time.Second, "alone sent", func() bool { return len(single.sim.Incidents()) >= 2 })
	alone := time.Since(start)

	budgetKV, err := h.conn.js.KeyValue(context.Background(), "ionix_budget")
	if err != nil {
		t.Fatal(err)
	}
	revBefore := rvRevision(t, budgetKV, "window")
	const backlog = 3000
	h.publishAsync("acme", "acme", backlog)
	start = time.Now()
	h.publish("", ionix.EventOpened, "Vulnerability", "after-backlog")
	testkit.WaitForDiag(t, 120*time.Second, "after-backlog sent", func() bool { return len(single.sim.Incidents()) >= 3 },
		func() string { return "" })
	behind := time.Since(start)
	if c, err := h.conn.js.Consumer(context.Background(), "IONIX_ACTION_ITEMS", "servicenow"); err == nil {
		info, _ := c.Info(context.Background())
		t.Logf("consumer servicenow: filters %v delivered %d", info.Config.FilterSubjects, info.Delivered.Stream)
	}
	revAfter := rvRevision(t, budgetKV, "window")
	if err := stop(); err != nil {
		t.Errorf("runServed: %v", err)
	}
	t.Logf("default item alone: %v; after %d items of tenant acme (which this deployment does not even serve): %v; writes to the default budget key meanwhile: %d",
		alone.Round(time.Millisecond), backlog, behind.Round(time.Millisecond), revAfter-revBefore)
	if behind > alone+time.Second {
		t.Errorf("another tenant's backlog delayed the single-tenant form's item by %v (alone %v)", behind-alone, alone)
	}
}

func rvRevision(t *testing.T, kv jetstream.KeyValue, key string) uint64 {
	t.Helper()
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return e.Revision()
}

// publishAsync publishes n items of tenant tid as fast as the stream takes them.
func (h *rvHarness) publishAsync(tid, idPrefix string, n int) {
	h.t.Helper()
	names := topologyOptions(h.cfg).Names.ForTenant(tid)
	if _, err := topology.EnsureStream(context.Background(), h.conn.js, topology.Options{Names: topology.DefaultNames()}); err != nil {
		h.t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("%s-%d", idPrefix, i)
		body, _ := json.Marshal(map[string]any{"id": id, "title": "item of " + tid + ": " + id, "type": "Vulnerability", "urgency": 8.0,
			"first_opened_at": "2026-11-20T10:15:00Z", "asset": "a.example.com"})
		item, _ := ionix.Decode(body)
		msg := nats.NewMsg(ionix.Subject(names.ItemSubjectPrefix(), ionix.EventOpened, "Vulnerability"))
		msg.Header.Set(topology.HeaderEvent, "opened")
		msg.Header.Set(jetstream.MsgIDHeader, tid+":"+ionix.MsgID(item, ionix.EventOpened))
		msg.Data = body
		if _, err := h.conn.js.PublishMsgAsync(msg); err != nil {
			h.t.Fatal(err)
		}
	}
	select {
	case <-h.conn.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		h.t.Fatal("async publishes not acknowledged")
	}
}

// Each tenant is started and stopped by its own goroutine: deactivating a tenant whose
// ServiceNow hangs (its drain takes consumer.drain_timeout) does not delay another
// tenant's activation.
func TestASlowTenantsStopHoldsUpNoOtherTenant(t *testing.T) {
	t.Parallel()
	h := rvStart(t)
	h.cfg.Consumer.DrainTimeout = 8 * time.Second
	slow, fast := rvNewInstance(t, "slow"), rvNewInstance(t, "fast")
	hold := make(chan struct{})
	slow.hold.Store(&hold)
	t.Cleanup(func() { close(hold) })
	h.put("slow", slow.settings(), true)
	h.put("fast", fast.settings(), false)
	h.publish("slow", ionix.EventOpened, "Vulnerability", "s-1")
	h.publish("fast", ionix.EventOpened, "Vulnerability", "f-1")
	stop := h.serve(nil)
	testkit.WaitForDiag(t, 20*time.Second, "slow's post in flight", func() bool { return slow.imports.Load() >= 1 },
		func() string { return h.logs.String() })

	h.setActive("slow", false)
	start := time.Now()
	h.setActive("fast", true)
	testkit.WaitForDiag(t, 30*time.Second, "fast's item sent", func() bool { return len(fast.sim.Incidents()) >= 1 },
		func() string { return h.logs.String() })
	took := time.Since(start)
	_ = stop()
	t.Logf("fast activated; its item reached its instance after %v", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("activating fast took %v to take effect (SPEC §9: within 5 s): the loop waited for slow's drain", took.Round(time.Millisecond))
	}
}

// proxiedFleet is the tenant fleet run as consume runs it (runReconnecting) over a
// connection through a poisonProxy, serving tenant acme on its instance.
type proxiedFleet struct {
	srv   *embedded.Server
	proxy *poisonProxy
	cfg   config.Config
	logs  *testkit.Buffer
	fleet *tenantFleet
	done  chan error // runReconnecting's end
	ctx   context.Context
}

func startProxiedFleet(t *testing.T, acme *rvInstance) *proxiedFleet {
	t.Helper()
	srv := natstest.Start(t)
	proxy := startPoisonProxy(t, srv.URL()[len("nats://"):])
	h := rvStartAt(t, proxy.url())
	h.put("acme", acme.settings(), true)
	cfg, conn, logs, log := h.cfg, h.conn, h.logs, h.log
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fleet, err := newTenantFleet(cfg, metrics.New(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	pf := &proxiedFleet{srv: srv, proxy: proxy, cfg: cfg, logs: logs, fleet: fleet, done: make(chan error, 1), ctx: ctx}
	now := conn
	go func() {
		pf.done <- runReconnecting(ctx, conn, log,
			func(ctx context.Context) error { return runServed(ctx, now, pipeline{}, false, fleet) },
			func(c *natsConn) error { now = c; return nil })
	}()
	return pf
}

// When the server closes the connection for good, the bucket's watch ends with it: the
// fleet reports the lost connection, consume connects again and the tenants go on.
func TestTenantsSurviveAConnectionClosedByTheServer(t *testing.T) {
	t.Parallel()
	acme := rvNewInstance(t, "acme")
	pf := startProxiedFleet(t, acme)
	srv, proxy, cfg, logs, done, ctx := pf.srv, pf.proxy, pf.cfg, pf.logs, pf.done, pf.ctx
	testkit.WaitForDiag(t, 20*time.Second, "acme consuming", func() bool {
		return strings.Contains(logs.String(), "consuming for the tenant")
	}, func() string { return logs.String() })
	proxy.poison()
	testkit.WaitForDiag(t, 20*time.Second, "connection lost noticed", func() bool {
		return strings.Contains(logs.String(), "NATS connection lost for good") || len(done) > 0
	}, func() string { return logs.String() })
	select {
	case err := <-done:
		t.Fatalf("runReconnecting ended after the server closed the connection: %v", err)
	case <-time.After(3 * time.Second):
	}
	testkit.WaitForDiag(t, 20*time.Second, "reconnected", func() bool {
		return strings.Contains(logs.String(), "connected to NATS again")
	}, func() string { return logs.String() })
	// An item published after the reconnection reaches acme.
	names := topologyOptions(cfg).Names.ForTenant("acme")
	pc, err := connectNATS(config.NATS{URL: srv.URL()}, zerolog.Nop(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raw := []byte(`{"id":"after","title":"acme after","type":"Vulnerability","urgency":8,"first_opened_at":"2026-11-20T10:15:00Z","asset":"a"}`)
	item, _ := ionix.Decode(raw)
	if _, err := publisher.ForTenant(pc.js, names.ItemSubjectPrefix(), "acme").Publish(ctx, raw, item, ionix.EventOpened); err != nil {
		t.Fatal(err)
	}
	testkit.WaitForDiag(t, 20*time.Second, "acme's item after the reconnection", func() bool { return len(acme.sim.Incidents()) >= 1 },
		func() string { return logs.String() })
}

// A shutdown that meets a tenant's stop in flight ends without an error: the watch
// closing with the context is no failure.
func TestShutdownDuringAReconcileIsClean(t *testing.T) {
	t.Parallel()
	failures := 0
	const rounds = 4
	for round := range rounds {
		h := rvStart(t)
		h.cfg.Consumer.DrainTimeout = 2 * time.Second
		slow := rvNewInstance(t, "slow")
		hold := make(chan struct{})
		slow.hold.Store(&hold)
		h.put("slow", slow.settings(), true)
		h.publish("slow", ionix.EventOpened, "Vulnerability", "s-1")
		stop := h.serve(nil)
		testkit.WaitFor(t, 20*time.Second, "slow's post in flight", func() bool { return slow.imports.Load() >= 1 })
		// Deactivated, and stopped at once, while its post hangs: the shutdown meets
		// the tenant's stop in flight (or about to start) and must still be clean.
		h.setActive("slow", false)
		if err := stop(); err != nil {
			failures++
			t.Logf("round %d: runServed at shutdown: %v", round, err)
		}
		close(hold)
	}
	if failures > 0 {
		t.Errorf("%d of %d shutdowns during a reconcile ended with an error", failures, rounds)
	}
}

// A tenant's message ids start with "%t<tenant>:", which no id of the single-tenant form
// starts with: its item "acme:ai-1" and tenant acme's "ai-1" are both published.
func TestMessageIDsOfTheSingleTenantFormAndATenantDoNotCollide(t *testing.T) {
	t.Parallel()
	h := rvStart(t)
	ctx := context.Background()
	if _, err := topology.EnsureStream(ctx, h.conn.js, topologyOptions(h.cfg)); err != nil {
		t.Fatal(err)
	}
	body := func(id string) ([]byte, ionix.ActionItem) {
		raw, _ := json.Marshal(map[string]any{"id": id, "title": "Open port 22", "type": "Vulnerability", "urgency": 8.0,
			"first_opened_at": "2026-11-20T10:15:00Z", "asset": "db.example.com"})
		it, _ := ionix.Decode(raw)
		return raw, it
	}
	raw, it := body("acme:ai-1")
	if _, err := publisher.New(h.conn.js, "").Publish(ctx, raw, it, ionix.EventOpened); err != nil {
		t.Fatal(err)
	}
	raw, it = body("ai-1")
	names := topologyOptions(h.cfg).Names.ForTenant("acme")
	dup, err := publisher.ForTenant(h.conn.js, names.ItemSubjectPrefix(), "acme").Publish(ctx, raw, it, ionix.EventOpened)
	if err != nil {
		t.Fatal(err)
	}
	if dup {
		t.Errorf("tenant acme's item ai-1 was dropped as a duplicate of the single-tenant form's item acme:ai-1")
	}
}

// A tenant's halt (its instance proved not to coalesce) is the fleet's: the tenant's
// pipeline built over a new connection starts halted, as the single-tenant form's does.
func TestATenantsHaltOutlivesAReconnection(t *testing.T) {
	t.Parallel()
	sim := emulator.New(emulator.Options{ClientID: "acme-client", ClientSecret: "cs-acme", Username: "svc.acme", Password: "pw-acme", NoCoalesce: true})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	pf := startProxiedFleet(t, &rvInstance{id: "acme", sim: sim, url: hs.URL})
	srv, proxy, cfg, logs, fleet, ctx := pf.srv, pf.proxy, pf.cfg, pf.logs, pf.fleet, pf.ctx
	pc, err := connectNATS(config.NATS{URL: srv.URL()}, zerolog.Nop(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := topology.EnsureStream(ctx, pc.js, topologyOptions(cfg)); err != nil {
		t.Fatal(err)
	}
	pub := publisher.ForTenant(pc.js, topologyOptions(cfg).Names.ForTenant("acme").ItemSubjectPrefix(), "acme")
	version := func(title string) {
		raw, _ := json.Marshal(map[string]any{"id": "ai-1", "title": title, "type": "Vulnerability", "urgency": 8.0,
			"first_opened_at": "2026-11-20T10:15:00Z", "asset": "a.example.com"})
		it, _ := ionix.Decode(raw)
		if _, err := pub.Publish(ctx, raw, it, ionix.EventOpened); err != nil {
			t.Fatal(err)
		}
	}
	version("v1")
	testkit.WaitForDiag(t, 20*time.Second, "v1", func() bool { return len(sim.Incidents()) == 1 }, logs.String)
	version("v2")
	testkit.WaitForDiag(t, 20*time.Second, "halt", func() bool { return strings.Contains(logs.String(), "sending halted") }, logs.String)
	incidents := len(sim.Incidents())
	proxy.poison()
	testkit.WaitForDiag(t, 20*time.Second, "reconnected", func() bool {
		return strings.Contains(logs.String(), "connected to NATS again")
	}, logs.String)
	// The tenant's pipeline over the new connection starts halted (the halt is the
	// fleet's, not the pipeline's), so v3 is never posted.
	testkit.WaitForDiag(t, 20*time.Second, "acme's new pipeline halted", func() bool {
		for _, ts := range fleet.Tenants() {
			if ts.Tenant == "acme" && ts.Source.Paused().Halted {
				return true
			}
		}
		return false
	}, logs.String)
	version("v3")
	if n := len(sim.Incidents()); n > incidents {
		t.Errorf("after the reconnection the halted tenant posted again: %d incidents for one item (were %d at the halt)", n, incidents)
	}
}
