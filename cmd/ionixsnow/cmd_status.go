package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/status"
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
	fs := e.flagSet("status", "[--config FILE] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	if code, ok := parse(fs, args); !ok {
		return code
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

	rep, err := status.Collect(ctx, conn.js, status.Options{
		Names:  topologyOptions(cfg).Names,
		Limit:  cfg.Cap.MaxPerWindow,
		Window: cfg.Cap.Window,
		Log:    log,
	})
	switch {
	case errors.Is(err, status.ErrNoStream):
		return fail(jsonFailure{Error: fmt.Sprintf("stream %s does not exist yet", cfg.NATS.Stream),
			Fix: "run `ionixsnow publish` or `ionixsnow consume` first: they create it"})
	case err != nil:
		return fail(jsonFailure{Error: fmt.Sprintf("read the status from NATS: %v", err),
			Fix: "check that JetStream is enabled and the NATS server answers, then run status again"})
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow status: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	status.Print(e.stdout, rep)
	return exitOK
}
