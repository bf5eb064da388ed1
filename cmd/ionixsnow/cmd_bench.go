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
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/bench"
	"github.com/ionix/ionixsnow/config"
)

// runBench measures the pipeline end to end in this process (package bench): the
// throughput, the per-item latency and the peak memory; with --broker-only, the
// broker's own ceiling on the same embedded server. Exit 0 when every item went
// through, 1 when the run failed, 2 on bad flags.
func runBench(e *env, args []string) int {
	fs := e.flagSet("bench", "[--items N] [--concurrency C] [--latency D] [--rate R] [--json] [--verbose] [--cpuprofile FILE] | --broker-only [--items N] [--concurrency B] [--double-ack]")
	items := fs.Int("items", bench.DefaultItems, "action items to send")
	concurrency := fs.Int("concurrency", bench.DefaultConcurrency, "consumer concurrency (posts in flight); with --broker-only, the fetch batch")
	latency := fs.Duration("latency", 0, "the ServiceNow emulator's response latency, e.g. 50ms")
	rate := fs.Float64("rate", 0, "publish at this many items per second with the consumer running (0: publish everything first, then drain)")
	brokerOnly := fs.Bool("broker-only", false, "measure nats-server alone: publish, then Fetch and Ack each message")
	doubleAck := fs.Bool("double-ack", false, "with --broker-only, acknowledge with DoubleAck (confirmed) as the consumer does")
	asJSON := fs.Bool("json", false, "print only the result, as JSON")
	verbose := fs.Bool("verbose", false, "show the pipeline's logs (on stderr)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `file` (go tool pprof)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	o := bench.Options{Items: *items, Concurrency: *concurrency, Latency: *latency, Rate: *rate, Log: zerolog.Nop()}
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
		res, err = bench.Broker(ctx, bench.BrokerOptions{Items: *items, Batch: *concurrency, DoubleAck: *doubleAck})
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
		fmt.Fprintf(w, "ionixsnow bench: %d items, %s, concurrency %d, ServiceNow latency %s, cap off\n",
			r.Items, mode, r.Concurrency, time.Duration(r.LatencyMS*float64(time.Millisecond)))
		fmt.Fprintf(w, "  end to end     %8.0f items/s  (%.2fs from the first publish to the last ack)\n", r.ThroughputPerS, r.Seconds)
		fmt.Fprintf(w, "  publish        %8.0f items/s\n", r.PublishPerS)
		fmt.Fprintf(w, "  consume        %8.0f items/s  (from the consumer's start)\n", r.DrainPerS)
		fmt.Fprintf(w, "  latency        p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms  (stored in the stream -> acked)\n", r.P50MS, r.P90MS, r.P99MS, r.MaxMS)
		fmt.Fprintf(w, "  peak RSS       %.1f MiB (%s, whole process: NATS server and emulator included)\n", r.MaxRSSMB, r.RSSSource)
		fmt.Fprintf(w, "  incidents      %d created, %d import requests, %d retried, %d dead-lettered\n", r.Created, r.Imports, r.Retried, r.DeadLettered)
	case bench.BrokerResult:
		fmt.Fprintf(w, "ionixsnow bench --broker-only: %d messages, Fetch(%d), %s each\n", r.Items, r.Batch, r.Ack)
		fmt.Fprintf(w, "  consume        %8.0f msgs/s  (%.2fs)\n", r.ThroughputPerS, r.Seconds)
		fmt.Fprintf(w, "  publish        %8.0f msgs/s\n", r.PublishPerS)
		fmt.Fprintf(w, "  peak RSS       %.1f MiB (%s)\n", r.MaxRSSMB, r.RSSSource)
	}
}
