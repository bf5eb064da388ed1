package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/topology"
)

func runPoll(e *env, args []string) int {
	fs := e.flagSet("poll", "[--config FILE] [--once] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	once := fs.Bool("once", false, "poll once and exit (for cron); exit 1 if the poll failed or IONIX returned invalid items")
	asJSON := fs.Bool("json", false, "print each poll's counts as a JSON line")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{IONIX: true})
	if !ok {
		return code
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	api, err := ionixapi.New(ionixapi.Config{BaseURL: cfg.IONIX.APIURL, Token: cfg.IONIX.Token, Account: cfg.IONIX.Account}, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow poll: %v\n", err)
		return exitUsage
	}
	conn, err := connectNATS(cfg.NATS, log, true)
	if err != nil {
		log.Error().Err(err).Msg("cannot reach NATS")
		return exitFailed
	}
	defer conn.Close()
	topo := topologyOptions(cfg)
	if _, err := topology.EnsureStream(ctx, conn.js, topo); err != nil {
		log.Error().Err(err).Msg("cannot set up the stream")
		return exitFailed
	}
	seen, err := topology.EnsureBucket(ctx, conn.js, topo.Names.WithDefaults().SeenBucket, "IONIX poller: action item id -> what was published", topo.Replicas)
	if err != nil {
		log.Error().Err(err).Msg("cannot set up the poller's state bucket")
		return exitFailed
	}
	poller := publisher.NewPoller(publisher.APISource(api), publisher.New(conn.js, topo.Names.SubjectPrefix), publisher.NewSeen(seen), log)

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
	poller.Run(ctx, cfg.IONIX.PollInterval, report)
	log.Info().Msg("stopped")
	return exitOK
}

func printPollResult(w io.Writer, log zerolog.Logger, res publisher.PollResult, err error, asJSON bool) {
	for _, p := range res.Problems {
		log.Warn().Str("action_item", p.ID).Str("where", p.Pos.String()).Err(p.Err).Msg("invalid action item from IONIX; not published")
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
