package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

func runPoll(e *env, args []string) int {
	fs := e.flagSet("poll", "[--config FILE] [--tenant T] [--once] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	tenantFlag := fs.String("tenant", "", "poll tenant `T`'s IONIX account with its settings (SPEC §9; \"default\": the single-tenant form); without it: the single-tenant form, and with secrets.keyset_file every active tenant with IONIX API settings too")
	once := fs.Bool("once", false, "poll once and exit (for cron); exit 1 if the poll failed or IONIX returned invalid items")
	asJSON := fs.Bool("json", false, "print each poll's counts as a JSON line")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	all := *tenantFlag == ""
	if all {
		*tenantFlag = tenant.Default
		peek, _, _ := config.LoadEnviron(*cfgPath, e.environ, config.Needs{})
		all = peek.Secrets.KeysetFile != ""
	}
	tid, err := tenant.ParseID(*tenantFlag)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow poll: --tenant: %v\n", err)
		return exitUsage
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{IONIX: tid == tenant.Default && !all})
	if !ok {
		return code
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	conn, err := connectNATS(cfg.NATS, log, true)
	if err != nil {
		log.Error().Err(err).Msg("cannot reach NATS")
		return exitFailed
	}
	defer conn.Close()
	if all {
		return e.pollAll(ctx, conn, cfg, *once, *asJSON, log)
	}
	if tid != tenant.Default {
		if cfg, err = tenantConfig(ctx, conn, cfg, tid, true, log); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow poll: %v\n", err)
			return exitFailed
		}
		if err := cfg.ValidateFor(config.Needs{IONIX: true}); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow poll: tenant %s has no IONIX API settings to poll with:\n%s\n", tid, indent(err.Error()))
			return exitUsage
		}
	}
	api, err := ionixapi.New(ionixapi.Config{BaseURL: cfg.IONIX.APIURL, Token: cfg.IONIX.Token, Account: cfg.IONIX.Account}, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow poll: %v\n", err)
		return exitUsage
	}
	poller, err := newPoller(ctx, conn, cfg, tid, api, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot set up the poller")
		return exitFailed
	}
	report := func(res publisher.PollResult, err error) {
		printPollResult(e.stdout, log, "", res, err, *asJSON)
	}
	if *once {
		res, err := poller.PollOnce(ctx)
		report(res, err)
		if err != nil || res.Invalid > 0 {
			return exitFailed
		}
		return exitOK
	}
	log.Info().Str("api_url", cfg.IONIX.APIURL).Str("account", cfg.IONIX.Account).
		Dur("interval", cfg.IONIX.PollInterval).Msg("polling IONIX")
	err = runReconnecting(ctx, conn, log,
		func(ctx context.Context) error { poller.Run(ctx, cfg.IONIX.PollInterval, report); return nil },
		func(conn *natsConn) (err error) {
			if poller, err = newPoller(ctx, conn, cfg, tid, api, log); err != nil {
				return fmt.Errorf("set up the poller again: %w", err)
			}
			return nil
		})
	if err != nil {
		log.Error().Err(err).Msg("poller stopped")
		return exitFailed
	}
	log.Info().Msg("stopped")
	return exitOK
}

// newPoller sets up the stream and the poller's state bucket over conn and returns
// the poller.
func newPoller(ctx context.Context, conn *natsConn, cfg config.Config, t string, api *ionixapi.Client, log zerolog.Logger) (*publisher.Poller, error) {
	// The poller may start beside consumers setting up the same stream on a forming
	// cluster: retried as they are (retryWhileStarting).
	topo := tenantTopologyOptions(cfg, t)
	var seen jetstream.KeyValue
	err := retryWhileStarting(ctx, func(ctx context.Context) (err error) {
		if _, err := topology.EnsureStream(ctx, conn.js, topo); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		seen, err = topology.EnsureBucket(ctx, conn.js, topo.Names.WithDefaults().SeenBucket, "IONIX poller: action item id -> what was published", topo.Replicas)
		if err != nil {
			return fmt.Errorf("the poller's state bucket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return publisher.NewPoller(publisher.APISource(api), publisher.ForTenant(conn.js, topo.Names.ItemSubjectPrefix(), t),
		publisher.NewSeenForTenant(seen, topo.Names.LedgerPrefix()), log), nil
}

// printPollResult prints one poll's counts; t names the tenant when several are
// polled ("" otherwise).
func printPollResult(w io.Writer, log zerolog.Logger, t string, res publisher.PollResult, err error, asJSON bool) {
	if t != "" {
		log = log.With().Str("tenant", t).Logger()
	}
	for _, p := range res.Problems {
		log.Warn().Str("action_item", ionix.ShortID(p.ID)).Str("where", p.Pos.String()).Err(p.Err).Msg("invalid action item from IONIX; not published")
	}
	if err != nil {
		log.Error().Err(err).Msg("poll failed; the next poll tries again")
	}
	if asJSON {
		out := struct {
			Tenant string `json:"tenant,omitempty"`
			publisher.PollResult
			Published int    `json:"published"`
			Error     string `json:"error,omitempty"`
		}{Tenant: t, PollResult: res, Published: res.Published()}
		if err != nil {
			out.Error = err.Error()
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	log.Info().Int("open", res.Open).Int("new", res.New).Int("changed", res.Changed).Int("reopened", res.Reopened).
		Int("closed", res.Closed).Int("unchanged", res.Unchanged).Int("invalid", res.Invalid).Msg("poll done")
}

// pollTarget is one account polled by pollAll.
type pollTarget struct {
	tenant string
	cfg    config.Config // the deployment's, with the tenant's settings
}

// pollAll polls, every ionix.poll_interval (or once), the single-tenant form when its
// configuration has IONIX API settings and every active tenant of the bucket that has
// them; the list is read again before each round, so tenants put, activated or
// deactivated meanwhile are followed.
func (e *env) pollAll(ctx context.Context, conn *natsConn, cfg config.Config, once, asJSON bool, log zerolog.Logger) int {
	pollers := map[string]*publisher.Poller{} // by tenant and its IONIX settings
	round := func(conn *natsConn) (failed bool) {
		targets, err := pollTargets(ctx, conn, cfg, log)
		if err != nil {
			log.Error().Err(err).Msg("cannot list the accounts to poll; the next round tries again")
			return true
		}
		if len(targets) == 0 {
			log.Warn().Msg("no account to poll: neither the config's ionix section nor an active tenant has IONIX API settings")
		}
		for _, tg := range targets {
			key := tg.tenant + "\x00" + tg.cfg.IONIX.APIURL + "\x00" + tg.cfg.IONIX.Account + "\x00" + tg.cfg.IONIX.Token
			p := pollers[key]
			if p == nil {
				api, err := ionixapi.New(ionixapi.Config{BaseURL: tg.cfg.IONIX.APIURL, Token: tg.cfg.IONIX.Token, Account: tg.cfg.IONIX.Account}, log)
				if err == nil {
					p, err = newPoller(ctx, conn, tg.cfg, tg.tenant, api, log.With().Str("tenant", tg.tenant).Logger())
				}
				if err != nil {
					log.Error().Str("tenant", tg.tenant).Err(err).Msg("cannot set up the tenant's poller")
					failed = true
					continue
				}
				pollers[key] = p
			}
			res, err := p.PollOnce(ctx)
			printPollResult(e.stdout, log, tg.tenant, res, err, asJSON)
			failed = failed || err != nil || res.Invalid > 0
		}
		return failed
	}
	if once {
		if round(conn) {
			return exitFailed
		}
		return exitOK
	}
	log.Info().Dur("interval", cfg.IONIX.PollInterval).Msg("polling IONIX for the single-tenant form and every active tenant")
	now := conn
	err := runReconnecting(ctx, conn, log,
		func(ctx context.Context) error {
			for ctx.Err() == nil {
				round(now)
				select {
				case <-ctx.Done():
				case <-time.After(cfg.IONIX.PollInterval):
				}
			}
			return nil
		},
		func(c *natsConn) error {
			now, pollers = c, map[string]*publisher.Poller{}
			return nil
		})
	if err != nil {
		log.Error().Err(err).Msg("poller stopped")
		return exitFailed
	}
	log.Info().Msg("stopped")
	return exitOK
}

// pollTargets are the accounts pollAll polls now.
func pollTargets(ctx context.Context, conn *natsConn, cfg config.Config, log zerolog.Logger) ([]pollTarget, error) {
	var out []pollTarget
	if cfg.ValidateFor(config.Needs{IONIX: true}) == nil {
		out = append(out, pollTarget{tenant: tenant.Default, cfg: cfg})
	}
	store, err := readOnlyTenants(ctx, conn, cfg, nil)
	if errors.Is(err, tenant.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	entries, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, en := range entries {
		if en.Err != nil || !en.Settings.Active || en.Settings.IONIX.Token == "" {
			continue
		}
		tcfg, err := tenantConfig(ctx, conn, cfg, en.ID, true, log)
		if err != nil {
			log.Error().Str("tenant", en.ID).Err(err).Msg("cannot read the tenant's settings; not polled this round")
			continue
		}
		if tcfg.ValidateFor(config.Needs{IONIX: true}) != nil {
			continue
		}
		out = append(out, pollTarget{tenant: en.ID, cfg: tcfg})
	}
	return out, nil
}
