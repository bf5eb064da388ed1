package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/topology"
)

func runPublish(e *env, args []string) int {
	fs := e.flagSet("publish", "[--file F] [--event opened|closed] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	file := fs.String("file", "", "read action items from `F` (default: stdin)")
	event := fs.String("event", string(ionix.EventOpened), "event to publish the items as: opened or closed")
	asJSON := fs.Bool("json", false, "print the counts as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	ev := ionix.Event(*event)
	if ev != ionix.EventOpened && ev != ionix.EventClosed {
		fmt.Fprintf(e.stderr, "ionixsnow publish: --event must be opened or closed, not %q\n", *event)
		return exitUsage
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{})
	if !ok {
		return code
	}
	in := e.stdin
	if *file != "" && *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow publish: %v\n", err)
			return exitFailed
		}
		defer f.Close()
		in = f
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	conn, err := connectNATS(cfg.NATS, log, true)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow publish: %v\n", err)
		return exitFailed
	}
	defer conn.Close()
	topo := topologyOptions(cfg)
	if _, err := topology.EnsureStream(ctx, conn.js, topo); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow publish: %v\n", err)
		return exitFailed
	}
	pub := publisher.New(conn.js, topo.Names.SubjectPrefix)
	res, err := pub.PublishAll(ctx, in, ev, nil)
	printPublishResult(e.stdout, e.stderr, res, *asJSON)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow publish: stopped: %v\n", err)
		return exitFailed
	}
	if res.Invalid > 0 {
		return exitFailed
	}
	return exitOK
}

func printPublishResult(stdout, stderr io.Writer, res publisher.Result, asJSON bool) {
	for _, p := range res.Problems {
		fmt.Fprintf(stderr, "invalid: %s\n", p)
	}
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(res)
		return
	}
	fmt.Fprintf(stdout, "published %d, duplicate %d, invalid %d\n", res.Published, res.Duplicates, res.Invalid)
}
