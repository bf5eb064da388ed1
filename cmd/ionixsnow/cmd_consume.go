package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/fairshare"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/metrics"
	"github.com/ionix/ionixsnow/monitoring"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

func runConsume(e *env, args []string) int {
	fs := e.flagSet("consume", "[--config FILE]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	// The single-tenant form (the config file's servicenow section) is served when the
	// file describes it, or when there is nothing else to serve; the tenants of the
	// integrations bucket when a keyset can open their secrets (SPEC §9).
	peek, _, _ := config.LoadEnviron(*cfgPath, e.environ, config.Needs{})
	serveTenants := peek.Secrets.KeysetFile != ""
	serveDefault := peek.ServiceNow.InstanceURL != "" || !serveTenants
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{ServiceNow: serveDefault})
	if !ok {
		return code
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := metrics.New()
	var tenants *tenantFleet
	// Serving tenants, the process's posts are shared among them in turn (the
	// single-tenant form's too).
	var slots *fairshare.Pool
	if serveTenants {
		slots = fairshare.New(cfg.Consumer.ProcessConcurrency)
		f, err := newTenantFleet(cfg, m, slots, log)
		if err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow consume: secrets.keyset_file: %v\n", err)
			return exitUsage
		}
		tenants = f
	}
	conn, err := connectNATS(cfg.NATS, log, true)
	if err != nil {
		log.Error().Err(err).Msg("cannot reach NATS")
		return exitFailed
	}
	defer conn.Close()
	cur := newLive()
	cur.set(conn, pipeline{})
	var snow *servicenow.Client
	var p pipeline
	carried := func() consumer.Deps {
		d := cur.carried(snow)
		if slots != nil {
			d.Slots = slots.For(tenant.Default)
		}
		return d
	}
	if serveDefault {
		if snow, err = servicenow.New(cfg.ServiceNow.Client(), log); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow consume: %v\n", err)
			return exitUsage
		}
		if p, err = newPipeline(ctx, conn, cfg, m.Importer(snow), carried(), log); err != nil {
			log.Error().Err(err).Msg("cannot set up the consumer")
			return exitFailed
		}
		cur.set(conn, p)
		if !serveTenants {
			m.Watch(cur, cur)
		}
	}
	if serveTenants {
		m.WatchTenants(servedTenants{cur: cur, fleet: tenants, withDefault: serveDefault})
	}
	if cfg.HTTP.Listen != "" {
		mon := monitoring.New(log, readiness(cur, snow)...)
		mon.Handle("/metrics", m.Handler())
		addr, err := mon.ListenAndServe(ctx, cfg.HTTP.Listen)
		if err != nil {
			log.Error().Err(err).Msg("cannot serve /metrics, /healthz and /readyz")
			return exitFailed
		}
		log.Info().Str("listen", addr.String()).Msg("serving /metrics, /healthz and /readyz")
	}
	if serveDefault {
		if cfg.ServiceNow.AllowInsecureHTTP && strings.HasPrefix(cfg.ServiceNow.InstanceURL, "http:") {
			log.Warn().Str("servicenow", cfg.ServiceNow.InstanceURL).Msg("servicenow.allow_insecure_http: credentials and items travel in clear text; for an emulator only")
		}
		if err := snow.Authenticate(ctx); err != nil {
			log.Warn().Err(err).Msg("no ServiceNow token yet; items wait on the stream until ServiceNow accepts them")
		}
		log.Info().Str("stream", cfg.NATS.Stream).Str("consumer", cfg.NATS.Consumer).
			Str("servicenow", cfg.ServiceNow.InstanceURL).Msg("consuming")
	}
	now := conn
	err = runReconnecting(ctx, conn, log,
		func(ctx context.Context) error { return runServed(ctx, now, p, serveDefault, tenants) },
		func(conn *natsConn) (err error) {
			now = conn
			if !serveDefault {
				cur.set(conn, pipeline{})
				return nil
			}
			if p, err = newPipeline(ctx, conn, cfg, m.Importer(snow), carried(), log); err != nil {
				return fmt.Errorf("set up the consumer again: %w", err)
			}
			cur.set(conn, p)
			return nil
		})
	if err != nil {
		log.Error().Err(err).Msg("consumer stopped")
		return exitFailed
	}
	s := cur.Stats()
	log.Info().Int64("created", s.Created).Int64("updated", s.Updated).Int64("filtered", s.Filtered()).
		Int64("dead_lettered", s.DeadLettered).Msg("stopped")
	return exitOK
}

// servedTenants lists the tenants consume serves now for /metrics: the single-tenant
// form (as "default") and the bucket's running tenants.
type servedTenants struct {
	cur         *live
	fleet       *tenantFleet
	withDefault bool
}

func (s servedTenants) Tenants() []metrics.TenantSource {
	out := s.fleet.Tenants()
	if s.withDefault {
		out = append(out, metrics.TenantSource{Tenant: tenant.Default, Source: s.cur, Budget: s.cur})
	}
	return out
}

// runServed runs the single-tenant pipeline (when serveDefault) and the tenants (when
// there are any) until ctx ends; the first to fail ends the other.
func runServed(ctx context.Context, conn *natsConn, p pipeline, serveDefault bool, tenants *tenantFleet) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	n := 0
	if serveDefault {
		n++
		go func() { errs <- p.consumer.Run(ctx) }()
	}
	if tenants != nil {
		n++
		go func() { errs <- tenants.Run(ctx, conn) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// pipeline is a consumer and the global budget it spends.
type pipeline struct {
	consumer *consumer.Consumer
	budget   *budget.KV
}

// newPipeline ensures the topology and builds the consumer over it.
// carry holds the consumer's parts that outlive one connection: the incident
// reader (optional), the counters and a halt (nil: the consumer's own).
func newPipeline(ctx context.Context, conn *natsConn, cfg config.Config, imp consumer.Importer, carry consumer.Deps, log zerolog.Logger) (pipeline, error) {
	return newTenantPipeline(ctx, conn, cfg, "", nil, imp, carry, log)
}

// newTenantPipeline is newPipeline for tenant t (SPEC §9): cfg is the deployment's
// configuration with the tenant's settings in it; t "" is the single-tenant form.
// tune, when not nil, adjusts the consumer's options (a tenant's doorbell).
func newTenantPipeline(ctx context.Context, conn *natsConn, cfg config.Config, t string, tune func(*consumer.Options), imp consumer.Importer, carry consumer.Deps, log zerolog.Logger) (pipeline, error) {
	topo, err := ensureTopology(ctx, conn.js, tenantTopologyOptions(cfg, t))
	if err != nil {
		return pipeline{}, err
	}
	sends, err := budget.NewKV(topo.Budget, cfg.Cap.MaxPerWindow, cfg.Cap.Window, budgetOptions(cfg.Cap, topo.Names, log)...)
	if err != nil {
		return pipeline{}, fmt.Errorf("budget: %w", err)
	}
	d := pipelineDeps(conn, topo, imp, sends, log)
	d.Consumer = topo.Consumer
	// The express lanes of the pipeline's replicas claim what they send ahead in the
	// budget's bucket, under the pipeline's budget key.
	key := topo.Names.BudgetKey()
	if key == "" {
		key = budget.DefaultKey
	}
	d.Claims = &consumer.Claims{KV: topo.Budget, Prefix: "ahead." + key + "."}
	d.Incidents, d.RateLimit, d.Stats, d.Halt, d.Slots = carry.Incidents, carry.RateLimit, carry.Stats, carry.Halt, carry.Slots
	o := consumerOptions(cfg, topo.Names)
	if tune != nil {
		tune(&o)
	}
	c, err := consumer.New(d, o)
	return pipeline{consumer: c, budget: sends}, err
}

// budgetOptions are the options of a pipeline's budget: its key, its pacing.
func budgetOptions(c config.Cap, names topology.Names, log zerolog.Logger) []budget.Option {
	opts := []budget.Option{budget.WithLogger(log)}
	if key := names.BudgetKey(); key != "" {
		opts = append(opts, budget.WithKey(key))
	}
	if b := c.PacedBurst(); b > 0 {
		opts = append(opts, budget.WithPacing(b))
	}
	if r := c.Reserve(); r > 0 {
		opts = append(opts, budget.WithReserve(r))
	}
	return opts
}

// pipelineDeps are the consumer's parts over the topology, but for the durable
// consumer itself (consume's, or a replay's).
func pipelineDeps(conn *natsConn, topo *topology.Topology, imp consumer.Importer, budget *budget.KV, log zerolog.Logger) consumer.Deps {
	return consumer.Deps{
		Importer:    imp,
		Ledger:      ledger.NewForTenant(topo.Tickets, topo.Names.LedgerPrefix()),
		JetStream:   conn.js,
		DeadLetters: dlq.New(conn.js, topo.Names),
		Budget:      budget,
		Stream:      topo.Stream,
		Log:         log,
	}
}

// consumerOptions are the pipeline's options from the configuration.
func consumerOptions(cfg config.Config, names topology.Names) consumer.Options {
	return consumer.Options{
		ItemPrefix:     names.ItemSubjectPrefix(),
		Concurrency:    cfg.Consumer.Concurrency,
		Filter:         filterOf(cfg),
		Mapping:        mappingOf(cfg),
		ResolveOnClose: cfg.Consumer.ResolveOnClose,
		MaxBackoff:     cfg.Consumer.MaxBackoff,
		AckWait:        cfg.Consumer.AckWait,
		MaxDeliver:     cfg.Consumer.MaxDeliver,
		DrainTimeout:   cfg.Consumer.DrainTimeout,
		Express:        true, // High, then Medium items ahead of a backlog the cap holds back
	}
}

// readiness lists what /readyz checks: NATS connected, a ServiceNow token held, and
// sending not paused by a configuration error.
func readiness(cur *live, snow *servicenow.Client) []monitoring.Check {
	checks := []monitoring.Check{
		{Name: "nats", Err: func() error {
			if st := cur.natsStatus(); st != nats.CONNECTED {
				return fmt.Errorf("NATS connection is %s", strings.ToLower(st.String()))
			}
			return nil
		}},
	}
	if snow == nil {
		// Only tenants of the bucket: each has its own token and pause.
		return checks
	}
	return append(checks, []monitoring.Check{
		{Name: "servicenow_token", Err: func() error {
			if !snow.HasToken() {
				return errors.New("no ServiceNow access token held")
			}
			return nil
		}},
		{Name: "sending", Err: func() error {
			if p := cur.Paused(); p.Paused && p.Configuration {
				return fmt.Errorf("paused by a ServiceNow configuration problem: %v", p.Cause)
			}
			return nil
		}},
	}...)
}
