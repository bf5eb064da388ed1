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

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/status"
)

// statusTimeout bounds the whole status read: a few JetStream API requests.
const statusTimeout = 15 * time.Second

// runStatus prints the stream, the consumer's backlog, the budget, the dead letters
// and the drain ETA, as a table or with --json as one JSON object. It only reads:
// it never starts an embedded server nor creates a stream, consumer or bucket.
// Exit 0 when the stream could be read, 1 when NATS is unreachable or nothing
// exists yet, 2 on bad flags or configuration.
func runStatus(e *env, args []string) int {
	fs := e.flagSet("status", "[--config FILE] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{})
	if !ok {
		return code
	}
	log := newLogger(config.Log{Level: "error", Format: cfg.Log.Format}, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()

	conn, err := connectNATS(cfg.NATS, log, false)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow status: %v\n", err)
		if cfg.NATS.URL == "" {
			fmt.Fprintln(e.stderr, "ionixsnow status: start `ionixsnow consume` (it runs the embedded server) or set nats.url")
		}
		return exitFailed
	}
	defer conn.Close()

	rep, err := status.Collect(ctx, conn.js, status.Options{
		Names:  topologyOptions(cfg).Names,
		Limit:  cfg.Cap.MaxPerWindow,
		Window: cfg.Cap.Window,
		Log:    log,
	})
	if err != nil {
		if !errors.Is(err, status.ErrNoStream) {
			err = fmt.Errorf("read the status from NATS: %w", err)
		}
		fmt.Fprintf(e.stderr, "ionixsnow status: %v\n", err)
		return exitFailed
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
