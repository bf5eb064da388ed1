package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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
	tenantFlag := fs.String("tenant", tenant.Default, "poll tenant `T`'s IONIX account with its settings (SPEC §9); default: the single-tenant form")
	once := fs.Bool("once", false, "poll once and exit (for cron); exit 1 if the poll failed or IONIX returned invalid items")
	asJSON := fs.Bool("json", false, "print each poll's counts as a JSON line")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	tid, err := tenant.ParseID(*tenantFlag)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow poll: --tenant: %v\n", err)
		return exitUsage
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{IONIX: tid == tenant.Default})
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
		printPollResult(e.stdout, log, res, err, *asJSON)
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

func printPollResult(w io.Writer, log zerolog.Logger, res publisher.PollResult, err error, asJSON bool) {
	for _, p := range res.Problems {
		log.Warn().Str("action_item", ionix.ShortID(p.ID)).Str("where", p.Pos.String()).Err(p.Err).Msg("invalid action item from IONIX; not published")
	}
	if err != nil {
		log.Error().Err(err).Msg("poll failed; the next poll tries again")
	}
	if asJSON {
		out := struct {
			publisher.PollResult
			Published int    `json:"published"`
			Error     string `json:"error,omitempty"`
		}{PollResult: res, Published: res.Published()}
		if err != nil {
			out.Error = err.Error()
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	log.Info().Int("open", res.Open).Int("new", res.New).Int("changed", res.Changed).Int("reopened", res.Reopened).
		Int("closed", res.Closed).Int("unchanged", res.Unchanged).Int("invalid", res.Invalid).Msg("poll done")
}
