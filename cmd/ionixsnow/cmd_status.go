package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/secrets"
	"github.com/ionix/ionixsnow/status"
	"github.com/ionix/ionixsnow/tenant"
)

// statusTimeout bounds the whole status read: a few JetStream API requests.
const statusTimeout = 15 * time.Second

// runStatus prints the stream, the consumer's backlog, the budget, the dead letters
// and the drain ETA, as a table or with --json as one JSON object. It only reads:
// it never starts an embedded server nor creates a stream, consumer or bucket.
// Exit 0 when the stream could be read, 1 when NATS is unreachable or nothing
// exists yet, 2 on bad flags or configuration. With --json every failure but a bad
// flag is a JSON object on stdout too (jsonFailure).
func runStatus(e *env, args []string) int {
	fs := e.flagSet("status", "[--config FILE] [--tenant T | --all] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	tenantFlag := fs.String("tenant", tenant.Default, "the status of tenant `T` (SPEC §9); default: the single-tenant form")
	all := fs.Bool("all", false, "a table (or with --json {\"tenants\":[…]}) of every tenant: active, backlog, cap used, drain ETA")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	tid, err := tenant.ParseID(*tenantFlag)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow status: --tenant: %v\n", err)
		return exitUsage
	}
	if *all && tid != tenant.Default {
		fmt.Fprintln(e.stderr, "ionixsnow status: give --tenant or --all, not both")
		return exitUsage
	}
	cfg, code, ok := e.loadConfigAs(*cfgPath, config.Needs{}, *asJSON)
	if !ok {
		return code
	}
	fail := func(f jsonFailure) int {
		if *asJSON {
			e.printJSONFailure(f)
		} else {
			fmt.Fprintf(e.stderr, "ionixsnow status: %s\n", f.Error)
			if f.Fix != "" {
				fmt.Fprintf(e.stderr, "ionixsnow status: %s\n", f.Fix)
			}
		}
		return exitFailed
	}
	log := newLogger(config.Log{Level: "error", Format: cfg.Log.Format}, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()

	conn, err := connectNATS(cfg.NATS, log, false)
	if err != nil {
		f := jsonFailure{Error: err.Error(), Fix: "check nats.url and nats.creds_file, and that the NATS server runs"}
		switch {
		case errors.Is(err, nats.ErrAuthorization) && cfg.NATS.URL == "":
			f.Fix = "set nats.embedded_token to the token consume runs the embedded server with"
		case cfg.NATS.URL == "":
			f.Fix = "start `ionixsnow consume` (it runs the embedded server) or set nats.url"
		}
		return fail(f)
	}
	defer conn.Close()

	if *all {
		return e.statusAll(ctx, conn, cfg, *asJSON, fail, log)
	}
	tcfg, code, ok := e.tenantStatusConfig(ctx, conn, cfg, tid, fail)
	if !ok {
		return code
	}
	rep, err := collectStatus(ctx, conn, tcfg, tid, log)
	switch {
	case errors.Is(err, status.ErrNoStream):
		return fail(jsonFailure{Error: fmt.Sprintf("stream %s does not exist yet", cfg.NATS.Stream),
			Fix: "run `ionixsnow publish` or `ionixsnow consume` first: they create it"})
	case err != nil:
		return fail(jsonFailure{Error: fmt.Sprintf("read the status from NATS: %v", err),
			Fix: "check that JetStream is enabled and the NATS server answers, then run status again"})
	}
	if *asJSON {
		return e.printJSON(rep)
	}
	status.Print(e.stdout, rep)
	return exitOK
}

// collectStatus reads tenant t's status; cfg holds its settings (its cap).
func collectStatus(ctx context.Context, conn *natsConn, cfg config.Config, t string, log zerolog.Logger) (status.Report, error) {
	names := tenantTopologyOptions(cfg, t).Names
	return status.Collect(ctx, conn.js, status.Options{
		Names:     names,
		BudgetKey: names.BudgetKey(),
		Limit:     cfg.Cap.MaxPerWindow,
		Window:    cfg.Cap.Window,
		Burst:     cfg.Cap.PacedBurst(),
		Reserve:   cfg.Cap.Reserve(),
		Log:       log,
	})
}

// tenantStatusConfig is the configuration status reads tenant t with: the config
// file's for the single-tenant form, the deployment's with t's settings (read from
// the bucket, no secret needed) otherwise.
func (e *env) tenantStatusConfig(ctx context.Context, conn *natsConn, cfg config.Config, t string, fail func(jsonFailure) int) (config.Config, int, bool) {
	if t == tenant.Default {
		return cfg, 0, true
	}
	tcfg, err := tenantConfig(ctx, conn, cfg, t, false, zerolog.Nop())
	if err != nil {
		return cfg, fail(jsonFailure{Error: err.Error(), Fix: "list the tenants with `ionixsnow tenant list`"}), false
	}
	return tcfg, 0, true
}

// readOnlyTenants is the tenants' store for reading, without creating the bucket;
// keys (nil: none) open their secrets.
func readOnlyTenants(ctx context.Context, conn *natsConn, cfg config.Config, keys *secrets.Keyset) (*tenant.Store, error) {
	kv, err := conn.js.KeyValue(ctx, tenantTopologyOptions(cfg, "").Names.IntegrationsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: there are no tenants yet (`ionixsnow tenant put` adds one)", tenant.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read the tenants' bucket: %w", err)
	}
	if keys == nil {
		return tenant.NewStore(kv, nil, nil), nil // a nil *Keyset is no Keys
	}
	return tenant.NewStore(kv, keys, secrets.AssociatedData), nil
}

// tenantStatus is one tenant's line of status --all: the one-tenant report, with the
// tenant, whether it is active, and why its sending is paused (SPEC §9).
type tenantStatus struct {
	Tenant string `json:"tenant"`
	Active bool   `json:"active"`
	// Paused is why consume paused the tenant's sending, as its last report
	// says; empty when it sends (or no consume has reported).
	Paused string `json:"paused"`
	status.Report
}

// statusAll prints every tenant's status: the single-tenant form's (when the config
// file describes it) and the bucket's.
func (e *env) statusAll(ctx context.Context, conn *natsConn, cfg config.Config, asJSON bool, fail func(jsonFailure) int, log zerolog.Logger) int {
	var out []tenantStatus
	add := func(t string, tcfg config.Config, active bool) error {
		rep, err := collectStatus(ctx, conn, tcfg, t, log)
		if err != nil {
			return err
		}
		out = append(out, tenantStatus{Tenant: t, Active: active, Report: rep, Paused: pausedReason(ctx, conn, cfg, t)})
		return nil
	}
	if cfg.ServiceNow.InstanceURL != "" {
		if err := add(tenant.Default, cfg, true); err != nil {
			return fail(jsonFailure{Error: fmt.Sprintf("read the status from NATS: %v", err)})
		}
	}
	store, err := readOnlyTenants(ctx, conn, cfg, nil)
	if err == nil {
		entries, lerr := store.List(ctx)
		if lerr != nil {
			return fail(jsonFailure{Error: lerr.Error()})
		}
		for _, en := range entries {
			if en.Err != nil {
				log.Warn().Str("tenant", en.ID).Err(en.Err).Msg("tenant left out")
				continue
			}
			if err := add(en.ID, en.Settings.Config(cfg), en.Settings.Active); err != nil {
				return fail(jsonFailure{Error: fmt.Sprintf("read the status of tenant %s: %v", en.ID, err)})
			}
		}
	} else if !errors.Is(err, tenant.ErrNotFound) {
		return fail(jsonFailure{Error: err.Error()})
	}
	if asJSON {
		if out == nil {
			out = []tenantStatus{}
		}
		return e.printJSON(map[string]any{"tenants": out})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tACTIVE\tBACKLOG\tCAP USED\tDEAD LETTERS\tPAUSED\tDRAIN ETA")
	for _, ts := range out {
		backlog := ts.Consumer.Pending + uint64(max(ts.Consumer.AckPending, 0))
		if !ts.Consumer.Exists {
			backlog = 0
		}
		paused := ts.Paused
		if paused == "" {
			paused = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d per %s\t%d\t%s\t%s\n", ts.Tenant, yesNo(ts.Active), backlog, ts.Budget.Used, ts.Budget.Limit,
			time.Duration(ts.Budget.WindowSeconds*float64(time.Second)), ts.DeadLetters, paused, status.Duration(ts.Drain.Duration))
	}
	_ = tw.Flush()
	return exitOK
}

// pausedReason is why consume replicas report tenant t's sending paused ("" when
// none does, or none reported).
func pausedReason(ctx context.Context, conn *natsConn, cfg config.Config, t string) string {
	kv, err := conn.js.KeyValue(ctx, tenantTopologyOptions(cfg, "").Names.TenantReportsBucket)
	if err != nil {
		return ""
	}
	reason, err := tenant.NewReports(kv).Paused(ctx, t)
	if err != nil {
		return ""
	}
	return reason
}
