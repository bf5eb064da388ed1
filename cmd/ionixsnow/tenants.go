package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/consumer"
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
// OAuth token), breaker and workers, so one tenant's outage, pause or backlog holds up
// no other.
type tenantFleet struct {
	cfg     config.Config // the deployment's
	keyPath string
	metrics *metrics.Metrics
	log     zerolog.Logger

	mu      sync.Mutex
	keys    *secrets.Keyset
	running map[string]*tenantRun
}

// tenantRun is one tenant's pipeline while it runs.
type tenantRun struct {
	revision uint64 // of the settings it runs with
	cancel   context.CancelFunc
	done     chan struct{}
}

func newTenantFleet(cfg config.Config, m *metrics.Metrics, log zerolog.Logger) (*tenantFleet, error) {
	keys, err := loadKeyset(cfg.Secrets.KeysetFile, log)
	if err != nil {
		return nil, err
	}
	return &tenantFleet{cfg: cfg, keyPath: cfg.Secrets.KeysetFile, metrics: m, log: log, keys: keys, running: map[string]*tenantRun{}}, nil
}

// Run serves the tenants over conn until ctx ends, then stops every tenant's pipeline
// (each drains as consume does at SIGTERM) and returns.
func (f *tenantFleet) Run(ctx context.Context, conn *natsConn) error {
	var bucket jetstream.KeyValue
	if err := retryWhileStarting(ctx, func(ctx context.Context) (err error) {
		bucket, err = topology.EnsureIntegrations(ctx, conn.js, topologyOptions(f.cfg))
		return err
	}); err != nil {
		return err
	}
	defer f.stopAll()
	w, err := bucket.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	retry := make(chan string, 64)
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-retry:
			f.reconcile(ctx, conn, bucket, id, retry)
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("the watch of the tenants' bucket ended")
			}
			if e == nil {
				f.mu.Lock()
				n := len(f.running)
				f.mu.Unlock()
				f.log.Info().Int("tenants_running", n).Msg("serving the active tenants of the integrations bucket")
				continue
			}
			f.reconcile(ctx, conn, bucket, e.Key(), retry)
		}
	}
}

// reconcile makes what runs for tenant id match the bucket: its pipeline runs, with
// the settings of the bucket's latest revision, exactly while the tenant is active.
func (f *tenantFleet) reconcile(ctx context.Context, conn *natsConn, bucket jetstream.KeyValue, id string, retry chan<- string) {
	log := f.log.With().Str("tenant", id).Logger()
	e, err := bucket.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		f.stop(id, log, "deleted")
		return
	case err != nil:
		log.Warn().Err(err).Dur("retry_in", tenantRetry).Msg("cannot read the tenant's settings")
		f.retryLater(ctx, id, retry)
		return
	}
	f.mu.Lock()
	r := f.running[id]
	f.mu.Unlock()
	if r != nil && r.revision == e.Revision() {
		return
	}
	st, err := f.settings(ctx, bucket, id)
	if err != nil {
		// A tenant that cannot be read runs no longer on stale settings. Its
		// secrets may not open yet because the keyset file reaches this process
		// after a rotation: it is tried again.
		f.stop(id, log, "unreadable")
		log.Error().Err(err).Dur("retry_in", tenantRetry).Msg("the tenant's settings cannot be used; it does not run until they can")
		f.retryLater(ctx, id, retry)
		return
	}
	if !st.Active {
		f.stop(id, log, "deactivated")
		return
	}
	f.stop(id, log, "settings changed")
	f.start(ctx, conn, id, e.Revision(), st, log, retry)
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
func (f *tenantFleet) start(ctx context.Context, conn *natsConn, id string, revision uint64, st tenant.Settings, log zerolog.Logger, retry chan<- string) {
	cfg := st.Config(f.cfg)
	snow, err := servicenow.New(cfg.ServiceNow.Client(), log)
	if err != nil {
		log.Error().Err(err).Msg("cannot build the tenant's ServiceNow client")
		return
	}
	stats := &consumer.Stats{}
	p, err := newTenantPipeline(ctx, conn, cfg, id, f.metrics.Importer(snow),
		consumer.Deps{Incidents: snow, RateLimit: snow, Stats: stats, Halt: &consumer.Halt{}}, log)
	if err != nil {
		log.Warn().Err(err).Dur("retry_in", tenantRetry).Msg("cannot set up the tenant's consumer")
		f.retryLater(ctx, id, retry)
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	r := &tenantRun{revision: revision, cancel: cancel, done: make(chan struct{})}
	f.mu.Lock()
	f.running[id] = r
	f.mu.Unlock()
	go func() {
		defer close(r.done)
		if err := snow.Authenticate(runCtx); err != nil && runCtx.Err() == nil {
			log.Warn().Err(err).Msg("no ServiceNow token yet; the tenant's items wait on the stream until ServiceNow accepts them")
		}
		log.Info().Str("servicenow", cfg.ServiceNow.InstanceURL).Str("consumer", topology.DefaultNames().ForTenant(id).Consumer).Msg("consuming for the tenant")
		err := p.consumer.Run(runCtx)
		if runCtx.Err() != nil {
			return
		}
		// Run ended on its own: try the tenant again later.
		log.Error().Err(err).Dur("retry_in", tenantRetry).Msg("the tenant's consumer stopped")
		f.mu.Lock()
		if f.running[id] == r {
			delete(f.running, id)
		}
		f.mu.Unlock()
		f.retryLater(ctx, id, retry)
	}()
}

// stop ends the tenant's pipeline, if one runs, and waits until it drained.
func (f *tenantFleet) stop(id string, log zerolog.Logger, why string) {
	f.mu.Lock()
	r := f.running[id]
	delete(f.running, id)
	f.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
	log.Info().Str("why", why).Msg("stopped consuming for the tenant")
}

func (f *tenantFleet) stopAll() {
	f.mu.Lock()
	ids := make([]string, 0, len(f.running))
	for id := range f.running {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { f.stop(id, f.log.With().Str("tenant", id).Logger(), "consume is stopping") })
	}
	wg.Wait()
}

// retryLater asks Run to reconcile the tenant again after tenantRetry.
func (f *tenantFleet) retryLater(ctx context.Context, id string, retry chan<- string) {
	time.AfterFunc(tenantRetry, func() {
		select {
		case retry <- id:
		case <-ctx.Done():
		}
	})
}
