package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/fairshare"
	"github.com/ionix/ionixsnow/metrics"
	"github.com/ionix/ionixsnow/secrets"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

// tenantRetry is how long a tenant whose pipeline could not start (or stopped with
// an error) waits before consume tries it again.
const tenantRetry = 10 * time.Second

// tenantFleet runs one pipeline per active tenant of the integrations bucket (SPEC §9) and
// follows the bucket: a put, an activation, a deactivation or a delete takes effect as
// soon as the bucket's watch reports it, without a restart. Each tenant has its own
// durable consumer, budget key, ledger keys, dead letters, ServiceNow client (its own
// OAuth token), breaker and workers, and its own goroutine that starts and stops its
// pipeline, so one tenant's outage, pause, backlog or slow drain holds up no other.
// Their posts share the process's consumer.process_concurrency slots: a tenant posts
// at most consumer.concurrency at once, and tenants waiting for a slot take turns.
type tenantFleet struct {
	cfg     config.Config // the deployment's
	keyPath string
	metrics *metrics.Metrics
	slots   *fairshare.Pool // the process's posts, shared among the tenants in turn
	log     zerolog.Logger

	replica string // this process, in its reports

	mu      sync.Mutex
	keys    *secrets.Keyset
	tenants map[string]*tenantSlot
	served  map[string]metrics.TenantSource // the pipelines running now, for /metrics
	// halts outlive each tenant's pipelines (a restart, a new connection): a tenant
	// whose instance proved not to coalesce sends again only from a new process, as
	// the single-tenant form.
	halts map[string]*consumer.Halt
}

// halt is the tenant's halt, the same for every pipeline of it this process runs.
func (f *tenantFleet) halt(id string) *consumer.Halt {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.halts == nil {
		f.halts = map[string]*consumer.Halt{}
	}
	h := f.halts[id]
	if h == nil {
		h = &consumer.Halt{}
		f.halts[id] = h
	}
	return h
}

// Tenants implements metrics.Tenants: the tenants whose pipelines run now.
func (f *tenantFleet) Tenants() []metrics.TenantSource {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]metrics.TenantSource, 0, len(f.served))
	for _, t := range f.served {
		out = append(out, t)
	}
	return out
}

// How often a tenant's goroutine looks at its pause, and renews its report unchanged
// (tenant.ReportTTL is longer).
const (
	reportCheck   = 2 * time.Second
	reportRefresh = 2 * time.Minute
)

// tenantSlot is one tenant's place in the fleet during a Run: a goroutine that
// reconciles it when kicked, and its pipeline while one runs.
type tenantSlot struct {
	kick chan struct{} // capacity 1: kicks that come while it works coalesce
	run  *tenantRun    // owned by the slot's goroutine

	reported   tenant.Report // the last report written
	reportedAt time.Time
	retrying   atomic.Bool // a retry is scheduled: no second one
	// bell is rung when a message reaches the tenant's subjects; its pipelines
	// pull only then (consumer.Options.Doorbell), so an idle tenant costs no request.
	bell chan struct{}
	// returns is the schedule of the messages its pipelines gave back with a
	// delay, carried from one pipeline to the next (consumer.Options.Returns).
	returns *consumer.Returns
}

// ringSubject is where a process that gave a tenant's messages back (its pipeline
// stopped) rings the other replicas' doorbells: <ringPrefix>.<tenant>, outside the
// stream.
const ringPrefix = "ionixsnow.doorbell"

// tenantRun is one tenant's pipeline while it runs.
type tenantRun struct {
	tenant   string
	conn     *natsConn
	revision uint64          // of the settings it runs with
	settings tenant.Settings // opened, as it runs with them
	consumer *consumer.Consumer
	cancel   context.CancelFunc
	done     chan struct{}
	failed   chan struct{} // closed when Run ended by itself
}

func newTenantFleet(cfg config.Config, m *metrics.Metrics, slots *fairshare.Pool, log zerolog.Logger) (*tenantFleet, error) {
	keys, err := loadKeyset(cfg.Secrets.KeysetFile, log)
	if err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	if slots == nil {
		slots = fairshare.New(cfg.Consumer.ProcessConcurrency)
	}
	return &tenantFleet{cfg: cfg, keyPath: cfg.Secrets.KeysetFile, metrics: m, slots: slots, log: log, keys: keys, replica: hex.EncodeToString(id[:])}, nil
}

// fleetRun is what the tenants' goroutines of one Run share.
type fleetRun struct {
	ctx     context.Context
	conn    *natsConn
	bucket  jetstream.KeyValue
	reports *tenant.Reports // nil: none written
	wg      *sync.WaitGroup
}

// Run serves the tenants over conn until ctx ends, then stops every tenant's pipeline
// (each drains as consume does at SIGTERM, all at once) and returns.
func (f *tenantFleet) Run(ctx context.Context, conn *natsConn) error {
	var bucket jetstream.KeyValue
	if err := retryWhileStarting(ctx, func(ctx context.Context) (err error) {
		bucket, err = topology.EnsureIntegrations(ctx, conn.js, topologyOptions(f.cfg))
		return err
	}); err != nil {
		return err
	}
	var reports *tenant.Reports
	if kv, err := topology.EnsureTenantReports(ctx, conn.js, topologyOptions(f.cfg), tenant.ReportTTL); err != nil {
		f.log.Warn().Err(err).Msg("cannot report the tenants' pauses; status --all will not show them")
	} else {
		reports = tenant.NewReports(kv)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	fr := fleetRun{ctx: ctx, conn: conn, bucket: bucket, reports: reports, wg: &wg}
	f.mu.Lock()
	f.tenants = map[string]*tenantSlot{}
	f.mu.Unlock()
	defer func() {
		// Under mu: no kick adds a tenant's goroutine once the Run is ending.
		f.mu.Lock()
		cancel()
		f.mu.Unlock()
		wg.Wait()
	}()
	// One subscription rings every tenant's doorbell: <prefix>.<tenant>.<event>.<category>.
	names := topologyOptions(f.cfg).Names.WithDefaults()
	sub, err := conn.nc.Subscribe(names.SubjectPrefix+".*.*.*", func(m *nats.Msg) {
		f.ring(strings.TrimPrefix(m.Subject, names.SubjectPrefix+"."))
	})
	if err != nil {
		return fmt.Errorf("subscribe to the tenants' subjects: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Another replica gave a tenant's messages back (its pipeline stopped): they are
	// there without a publish.
	rings, err := conn.nc.Subscribe(ringPrefix+".*", func(m *nats.Msg) {
		f.ring(strings.TrimPrefix(m.Subject, ringPrefix+"."))
	})
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", ringPrefix, err)
	}
	defer func() { _ = rings.Unsubscribe() }()
	// Publishes made while the connection was down rang no bell: ring them all.
	reconnected := conn.nc.StatusChanged(nats.CONNECTED)
	defer conn.nc.RemoveStatusListener(reconnected)
	go func() {
		for range reconnected {
			f.ringAll()
		}
	}()
	w, err := bucket.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				switch {
				case ctx.Err() != nil:
					return nil // stopping: the watch ended with the context
				case conn.nc.IsClosed():
					return fmt.Errorf("the watch of the tenants' bucket ended: %w", errConnectionLost)
				}
				return errors.New("the watch of the tenants' bucket ended")
			}
			if e == nil {
				f.mu.Lock()
				n := len(f.tenants)
				f.mu.Unlock()
				f.log.Info().Int("tenants", n).Msg("following the tenants of the integrations bucket")
				continue
			}
			f.kick(fr, e.Key())
		}
	}
}

// ring rings the doorbell of the tenant of a subject below the prefix
// (<tenant>.<event>.<category>), if this process serves it.
func (f *tenantFleet) ring(rest string) {
	id, _, _ := strings.Cut(rest, ".")
	f.mu.Lock()
	slot := f.tenants[id]
	f.mu.Unlock()
	if slot == nil {
		return
	}
	select {
	case slot.bell <- struct{}{}:
	default:
	}
}

// ringAll rings every tenant's doorbell.
func (f *tenantFleet) ringAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, slot := range f.tenants {
		select {
		case slot.bell <- struct{}{}:
		default:
		}
	}
}

// kick asks the tenant's goroutine (started on its first kick) to reconcile it.
func (f *tenantFleet) kick(fr fleetRun, id string) {
	f.mu.Lock()
	if fr.ctx.Err() != nil {
		f.mu.Unlock()
		return
	}
	slot := f.tenants[id]
	if slot == nil {
		slot = &tenantSlot{kick: make(chan struct{}, 1), bell: make(chan struct{}, 1), returns: consumer.NewReturns()}
		f.tenants[id] = slot
		fr.wg.Go(func() { f.follow(fr, id, slot) })
	}
	f.mu.Unlock()
	select {
	case slot.kick <- struct{}{}:
	default:
	}
}

// follow is the tenant's goroutine: it reconciles the tenant on each kick and when
// its pipeline stops by itself, and stops the pipeline when the Run ends.
func (f *tenantFleet) follow(fr fleetRun, id string, slot *tenantSlot) {
	log := f.log.With().Str("tenant", id).Logger()
	check := time.NewTicker(reportCheck)
	defer check.Stop()
	for {
		var failed chan struct{}
		if slot.run != nil {
			failed = slot.run.failed
		}
		select {
		case <-fr.ctx.Done():
			f.stop(slot, log, "consume is stopping")
			return
		case <-slot.kick:
			f.reconcile(fr, id, slot, log)
		case <-failed:
			f.stop(slot, log, "its consumer stopped")
			f.retryLater(fr, id, slot)
		case <-check.C:
			f.report(fr, id, slot, log)
		}
	}
}

// report writes this replica's report of the tenant when its pause changed, or
// renews it before it expires; a tenant not running here reports nothing.
func (f *tenantFleet) report(fr fleetRun, id string, slot *tenantSlot, log zerolog.Logger) {
	if fr.reports == nil || slot.run == nil && slot.reported.Paused == "" {
		return
	}
	var rep tenant.Report // not running here (any more): not paused here
	if slot.run != nil {
		if p := slot.run.consumer.Paused(); p.Paused && p.Cause != nil {
			rep.Paused = p.Cause.Error()
		} else if p.Paused {
			rep.Paused = "paused"
		}
	}
	now := time.Now()
	if rep.Paused == slot.reported.Paused && now.Sub(slot.reportedAt) < reportRefresh {
		return
	}
	rep.At = now.UTC()
	if err := fr.reports.Put(fr.ctx, id, f.replica, rep); err != nil {
		log.Debug().Err(err).Msg("cannot report the tenant's pause")
		return
	}
	slot.reported, slot.reportedAt = rep, now
}

// reconcile makes what runs for the tenant match the bucket: its pipeline runs, with
// the settings of the bucket's latest revision, exactly while the tenant is active.
func (f *tenantFleet) reconcile(fr fleetRun, id string, slot *tenantSlot, log zerolog.Logger) {
	e, err := fr.bucket.Get(fr.ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		f.stop(slot, log, "deleted")
		return
	case err != nil:
		if fr.ctx.Err() == nil {
			log.Warn().Err(err).Dur("retry_in", tenantRetry).Msg("cannot read the tenant's settings")
			f.retryLater(fr, id, slot)
		}
		return
	}
	if slot.run != nil && slot.run.revision == e.Revision() {
		return
	}
	// Whether it is active needs no secret: a deactivated tenant is stopped even
	// when its secrets do not open.
	view, err := tenant.NewStore(fr.bucket, nil, nil).View(fr.ctx, id)
	switch {
	case errors.Is(err, tenant.ErrInvalidID):
		// Written past `tenant put` (which refuses it): no retry makes it valid.
		f.stop(slot, log, "invalid id")
		log.Error().Err(err).Msg("a key of the tenants' bucket is no tenant id; it is not served")
		return
	case err == nil && !view.Active:
		f.stop(slot, log, "deactivated")
		return
	}
	st, err := f.settings(fr.ctx, fr.bucket, id)
	if err != nil {
		// A tenant that cannot be read runs no longer on stale settings. Its
		// secrets may not open yet because the keyset file reaches this process
		// after a rotation: it is tried again.
		f.stop(slot, log, "unreadable")
		log.Error().Err(err).Dur("retry_in", tenantRetry).Msg("the tenant's settings cannot be used; it does not run until they can")
		f.retryLater(fr, id, slot)
		return
	}
	if !st.Active {
		f.stop(slot, log, "deactivated")
		return
	}
	if r := slot.run; r != nil && sameSettings(r.settings, st) {
		// A new revision with the same settings (a keys rotate, a put of the same
		// file): the pipeline runs on; nothing to restart.
		r.revision = e.Revision()
		return
	}
	f.stop(slot, log, "settings changed")
	f.start(fr, id, e.Revision(), st, slot, log)
}

// sameSettings reports whether two settings run a tenant alike: the same, but for
// when they were written.
func sameSettings(a, b tenant.Settings) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// settings reads the tenant's settings with their secrets opened. When they do not
// open, the keyset file is read again once (keys rotate gave it a new primary key).
func (f *tenantFleet) settings(ctx context.Context, bucket jetstream.KeyValue, id string) (tenant.Settings, error) {
	f.mu.Lock()
	keys := f.keys
	f.mu.Unlock()
	st, err := tenant.NewStore(bucket, keys, secrets.AssociatedData).Get(ctx, id)
	if !errors.Is(err, secrets.ErrUndecryptable) {
		return st, checkSettings(id, st, err)
	}
	fresh, lerr := loadKeyset(f.keyPath, f.log)
	if lerr != nil {
		return st, err
	}
	f.mu.Lock()
	f.keys = fresh
	f.mu.Unlock()
	f.log.Info().Uint32("primary_key", fresh.PrimaryKeyID()).Msg("read the keyset file again")
	st, err = tenant.NewStore(bucket, fresh, secrets.AssociatedData).Get(ctx, id)
	return st, checkSettings(id, st, err)
}

func checkSettings(id string, st tenant.Settings, err error) error {
	if err != nil {
		return err
	}
	return st.ValidateFor(id)
}

// start runs the tenant's pipeline in its own goroutine.
func (f *tenantFleet) start(fr fleetRun, id string, revision uint64, st tenant.Settings, slot *tenantSlot, log zerolog.Logger) {
	cfg := st.Config(f.cfg)
	snow, err := servicenow.New(cfg.ServiceNow.Client(), log)
	if err != nil {
		log.Error().Err(err).Msg("cannot build the tenant's ServiceNow client")
		return
	}
	stats := &consumer.Stats{}
	tune := func(o *consumer.Options) {
		o.Doorbell, o.Returns = slot.bell, slot.returns
		// What it held unstarted went back to the stream: the other replicas'
		// consumers of the tenant may be waiting idle.
		o.GaveBack = func() { _ = fr.conn.nc.Publish(ringPrefix+"."+id, nil) }
	}
	p, err := newTenantPipeline(fr.ctx, fr.conn, cfg, id, tune, f.metrics.Importer(snow),
		consumer.Deps{Incidents: snow, RateLimit: snow, Stats: stats, Halt: f.halt(id), Slots: f.slots.For(id)}, log)
	if err != nil {
		if fr.ctx.Err() == nil {
			log.Warn().Err(err).Dur("retry_in", tenantRetry).Msg("cannot set up the tenant's consumer")
			f.retryLater(fr, id, slot)
		}
		return
	}
	runCtx, cancel := context.WithCancel(fr.ctx)
	r := &tenantRun{tenant: id, conn: fr.conn, revision: revision, settings: st, consumer: p.consumer, cancel: cancel, done: make(chan struct{}), failed: make(chan struct{})}
	slot.run = r
	f.mu.Lock()
	if f.served == nil {
		f.served = map[string]metrics.TenantSource{}
	}
	f.served[id] = metrics.TenantSource{Tenant: id, Source: p.consumer, Budget: p.budget}
	f.mu.Unlock()
	go func() {
		defer close(r.done)
		if err := snow.Authenticate(runCtx); err != nil && runCtx.Err() == nil {
			log.Warn().Err(err).Msg("no ServiceNow token yet; the tenant's items wait on the stream until ServiceNow accepts them")
		}
		log.Info().Str("servicenow", cfg.ServiceNow.InstanceURL).Str("consumer", topology.DefaultNames().ForTenant(id).Consumer).Msg("consuming for the tenant")
		err := p.consumer.Run(runCtx)
		if runCtx.Err() == nil {
			log.Error().Err(err).Dur("retry_in", tenantRetry).Msg("the tenant's consumer stopped")
			close(r.failed)
		}
	}()
}

// stop ends the tenant's pipeline, if one runs, and waits until it drained.
func (f *tenantFleet) stop(slot *tenantSlot, log zerolog.Logger, why string) {
	r := slot.run
	if r == nil {
		return
	}
	slot.run = nil
	r.cancel()
	<-r.done
	f.mu.Lock()
	if f.served[r.tenant].Source == metrics.Source(r.consumer) {
		delete(f.served, r.tenant)
	}
	f.mu.Unlock()
	log.Info().Str("why", why).Msg("stopped consuming for the tenant")
}

// retryLater kicks the tenant again after tenantRetry, once however often it is asked
// meanwhile.
func (f *tenantFleet) retryLater(fr fleetRun, id string, slot *tenantSlot) {
	if !slot.retrying.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(tenantRetry, func() {
		slot.retrying.Store(false)
		f.kick(fr, id)
	})
}
