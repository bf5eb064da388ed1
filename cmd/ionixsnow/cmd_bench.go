package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/bench"
	"github.com/ionix/ionixsnow/config"
)

// runBench measures the pipeline end to end (package bench): the throughput, the
// per-item latency, the CPU time per item and the peak memory, with the KV budget
// on (its cap raised out of the way) unless --cap-off, on an embedded NATS server
// unless --nats-url; with --broker-only, the broker's own ceiling on the same kind
// of server. Exit 0 when every item went through, 1 when the run failed, 2 on bad
// flags.
func runBench(e *env, args []string) int {
	fs := e.flagSet("bench", "[--items N] [--concurrency C] [--latency D] [--rate R] [--cap-off] [--nats-url URL] [--json] [--verbose] [--cpuprofile FILE] | --broker-only [--items N] [--concurrency B] [--double-ack] [--nats-url URL]")
	items := fs.Int("items", bench.DefaultItems, "action items to send")
	concurrency := fs.Int("concurrency", bench.DefaultConcurrency, "consumer concurrency (posts in flight); with --broker-only, the fetch batch")
	latency := fs.Duration("latency", 0, "the ServiceNow emulator's response latency, e.g. 50ms")
	rate := fs.Float64("rate", 0, "publish at this many items per second with the consumer running (0: publish everything first, then drain)")
	capOff := fs.Bool("cap-off", false, "run without the global budget (the default spends the KV budget as consume does, its cap raised so that it never binds)")
	natsURL := fs.String("nats-url", "", "run against this nats-server (JetStream on; the run's objects get names of their own and are deleted at the end) instead of one in this process")
	brokerOnly := fs.Bool("broker-only", false, "measure nats-server alone: publish, then Fetch and Ack each message")
	doubleAck := fs.Bool("double-ack", false, "with --broker-only, acknowledge with DoubleAck (confirmed) as the consumer does")
	asJSON := fs.Bool("json", false, "print only the result, as JSON")
	verbose := fs.Bool("verbose", false, "show the pipeline's logs (on stderr)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `file` (go tool pprof)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	o := bench.Options{Items: *items, Concurrency: *concurrency, Latency: *latency, Rate: *rate,
		CapOff: *capOff, NATSURL: *natsURL, Log: zerolog.Nop()}
	err := o.Validate()
	if *items < 1 || *concurrency < 1 { // zero would take the default
		err = errors.Join(err, fmt.Errorf("--items (%d) and --concurrency (%d) must be at least 1", *items, *concurrency))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow bench: %v\n", err)
		return exitUsage
	}
	if *verbose {
		o.Log = newLogger(config.Log{Level: "info", Format: "auto"}, e.stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow bench: %v\n", err)
			return exitFailed
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow bench: %v\n", err)
			return exitFailed
		}
		defer pprof.StopCPUProfile()
	}

	var res any
	if *brokerOnly {
		res, err = bench.Broker(ctx, bench.BrokerOptions{Items: *items, Batch: *concurrency, DoubleAck: *doubleAck, NATSURL: *natsURL})
	} else {
		res, err = bench.Run(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow bench: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		_ = json.NewEncoder(e.stdout).Encode(res)
		return exitOK
	}
	printBench(e.stdout, res)
	return exitOK
}

func printBench(w io.Writer, res any) {
	switch r := res.(type) {
	case bench.Result:
		mode := "backlog (publish all, then drain)"
		if r.Mode == bench.ModeRate {
			mode = fmt.Sprintf("rate (%g items/s)", r.Rate)
		}
		window := strings.TrimSuffix(strings.TrimSuffix(bench.BudgetWindow.String(), "0s"), "0m") // 1h, not 1h0m0s
		budget := fmt.Sprintf("KV budget on (cap %d per %s, never binding)", r.BudgetLimit, window)
		if r.Budget == bench.BudgetOff {
			budget = "budget off (--cap-off)"
		}
		fmt.Fprintf(w, "ionixsnow bench: %d items, %s, concurrency %d, ServiceNow latency %s\n",
			r.Items, mode, r.Concurrency, time.Duration(r.LatencyMS*float64(time.Millisecond)))
		fmt.Fprintf(w, "  configuration  %s, NATS %s\n", budget, r.NATS)
		fmt.Fprintf(w, "  end to end     %8.0f items/s  (%.2fs from the first publish to the last ack)\n", r.ThroughputPerS, r.Seconds)
		fmt.Fprintf(w, "  publish        %8.0f items/s\n", r.PublishPerS)
		fmt.Fprintf(w, "  consume        %8.0f items/s  (from the consumer's start)\n", r.DrainPerS)
		fmt.Fprintf(w, "  latency        p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms  (stored in the stream -> acked)\n", r.P50MS, r.P90MS, r.P99MS, r.MaxMS)
		fmt.Fprintf(w, "  CPU            %.3f ms per item  (%s)\n", r.CPUMSPerItem, inProcess(r.NATS))
		fmt.Fprintf(w, "  peak RSS       %.1f MiB (%s, %s)\n", r.MaxRSSMB, r.RSSSource, inProcess(r.NATS))
		fmt.Fprintf(w, "  incidents      %d created, %d import requests, %d retried, %d dead-lettered\n", r.Created, r.Imports, r.Retried, r.DeadLettered)
		if r.Budget == bench.BudgetKV {
			fmt.Fprintf(w, "  budget         %d grants in the ledger at the end\n", r.BudgetUsed)
		}
	case bench.BrokerResult:
		fmt.Fprintf(w, "ionixsnow bench --broker-only: %d messages, Fetch(%d), %s each, NATS %s\n", r.Items, r.Batch, r.Ack, r.NATS)
		fmt.Fprintf(w, "  consume        %8.0f msgs/s  (%.2fs)\n", r.ThroughputPerS, r.Seconds)
		fmt.Fprintf(w, "  publish        %8.0f msgs/s\n", r.PublishPerS)
		fmt.Fprintf(w, "  peak RSS       %.1f MiB (%s)\n", r.MaxRSSMB, r.RSSSource)
	}
}

// inProcess says what the process's CPU time and memory include.
func inProcess(nats string) string {
	if nats == bench.NATSExternal {
		return "whole process: pipeline and emulator; the NATS server not included"
	}
	return "whole process: NATS server and emulator included"
}
