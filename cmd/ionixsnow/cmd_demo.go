package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// demoSummary is what `demo --json` prints.
type demoSummary struct {
	Published    int64 `json:"published"`
	Filtered     int64 `json:"filtered"`
	Created      int64 `json:"created"`
	Updated      int64 `json:"updated"`
	DeadLettered int64 `json:"dead_lettered"`
	Failed       int64 `json:"failed"`
	// CriticalFirst is the second act: a backlog the cap holds back, then a
	// critical item overtaking it (SPEC §10).
	CriticalFirst criticalFirst `json:"critical_first"`
}

// criticalFirst is what the demo's second act showed.
type criticalFirst struct {
	Backlog  int    `json:"backlog"`  // low-urgency items published after the first act
	Waiting  int    `json:"waiting"`  // of them, still held back by the cap when the critical item arrived
	Incident string `json:"incident"` // the critical item's incident
	WaitMs   int64  `json:"wait_ms"`  // from its publish to its import
}

// The second act: demoBacklog low-urgency items, of which the cap lets demoLetThrough
// go; one send of the window is held for High items (cap.high_reserve).
const (
	demoBacklog    = 10
	demoLetThrough = 3
)

// demoCorrupt is a message with an urgency outside 0–10, put straight on the stream
// (publish would refuse it) to show dead-lettering.
const demoCorrupt = `{"id":"demo-corrupt-1","title":{"label":"Exported with a broken urgency"},"type":"DNS","urgency":{"urgency":42}}`

func runDemo(e *env, args []string) int {
	fs := e.flagSet("demo", "[--count N] [--json] [--verbose]")
	count := fs.Int("count", 20, "number of sample action items")
	asJSON := fs.Bool("json", false, "print only the summary, as JSON")
	verbose := fs.Bool("verbose", false, "show the pipeline's logs (on stderr)")
	threshold := fs.Float64("urgency-threshold", 4, "send only items with an IONIX urgency at least this (1-10)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *count < 1 || *count > 100000 {
		fmt.Fprintf(e.stderr, "ionixsnow demo: --count must be 1..100000, not %d\n", *count)
		return exitUsage
	}
	logCfg := config.Log{Level: "error", Format: "auto"}
	if *verbose {
		logCfg.Level = "info"
	}
	log := newLogger(logCfg, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *threshold < 1 || *threshold > 10 {
		fmt.Fprintf(e.stderr, "ionixsnow demo: --urgency-threshold must be 1..10, not %g\n", *threshold)
		return exitUsage
	}
	d, err := startDemo(ctx, log, *threshold, *count)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow demo: %v\n", err)
		return exitFailed
	}
	defer d.close()
	sum, err := d.run(ctx, *count)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow demo: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		_ = json.NewEncoder(e.stdout).Encode(sum)
	} else {
		d.print(ctx, e.stdout, *count, sum)
	}
	if sum.Failed > 0 {
		return exitFailed
	}
	return exitOK
}

// demo is the whole pipeline on loopback: embedded NATS, the emulator over HTTP, the
// publisher and the consumer.
type demo struct {
	dir  string
	conn *natsConn
	sim  *emulator.Server
	http *http.Server
	cfg  config.Config
	cons *consumer.Consumer
	log  zerolog.Logger
}

func startDemo(ctx context.Context, log zerolog.Logger, threshold float64, count int) (*demo, error) {
	d := &demo{log: log, sim: emulator.New(emulator.Options{})}
	var err error
	if d.dir, err = os.MkdirTemp("", "ionixsnow-demo-*"); err != nil {
		return nil, err
	}
	srv, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: d.dir})
	if err != nil {
		d.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Stop()
		d.close()
		return nil, err
	}
	d.http = &http.Server{Handler: d.sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.http.Serve(ln) }()

	d.cfg = config.Default()
	// The demo shows the pipeline at once: its items are not spread over the hour.
	// Its cap leaves room for the first act, demoLetThrough items of the second,
	// and one send held for a High item.
	d.cfg.Cap.Pacing = config.PacingBurst
	sent := 1 // the changed item of the first act
	for _, it := range ionix.SampleItems(count, 1) {
		if it.Urgency >= threshold {
			sent++
		}
	}
	d.cfg.Cap.MaxPerWindow, d.cfg.Cap.HighReserve = sent+demoLetThrough+1, 1
	d.cfg.NATS.URL = srv.URL()
	d.cfg.Filter.UrgencyThreshold = threshold
	d.cfg.ServiceNow.InstanceURL = "http://" + ln.Addr().String()
	d.cfg.ServiceNow.ClientID, d.cfg.ServiceNow.ClientSecret = "ionix", "ionix"
	d.cfg.ServiceNow.Username, d.cfg.ServiceNow.Password = "ionix", "ionix"
	if d.conn, err = connectNATS(d.cfg.NATS, log, false); err != nil {
		srv.Stop()
		d.close()
		return nil, err
	}
	d.conn.server = srv
	snow, err := servicenow.New(d.cfg.ServiceNow.Client(), log)
	if err != nil {
		d.close()
		return nil, err
	}
	p, err := newPipeline(ctx, d.conn, d.cfg, snow, consumer.Deps{Incidents: snow, RateLimit: snow}, log)
	if err != nil {
		d.close()
		return nil, err
	}
	d.cons = p.consumer
	return d, nil
}

func (d *demo) close() {
	if d.conn != nil {
		d.conn.Close()
	}
	if d.http != nil {
		_ = d.http.Close()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

// run publishes count sample items and a corrupt message, drains them through the
// consumer, then publishes a changed version of one item and drains again (an update
// of its incident through coalesce).
func (d *demo) run(ctx context.Context, count int) (demoSummary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.cons.Run(ctx) }()

	items := ionix.SampleItems(count, 1)
	pub := publisher.New(d.conn.js, "")
	var sum demoSummary
	res, err := pub.PublishAll(ctx, bytes.NewReader(ndjson(items)), ionix.EventOpened, nil)
	if err != nil {
		return sum, err
	}
	sum.Published += int64(res.Published)
	if _, err := d.conn.js.Publish(ctx, ionix.Subject("", ionix.EventOpened, "DNS"), []byte(demoCorrupt)); err != nil {
		return sum, err
	}
	sum.Published++
	if err := d.waitDrained(ctx); err != nil {
		return sum, err
	}
	changed := mostUrgentBelow(items, 9)
	changed.Urgency = 9.8
	changed.Title += " (now actively exploited)"
	raw, _ := json.Marshal(changed)
	if _, err := pub.Publish(ctx, raw, changed, ionix.EventOpened); err != nil {
		return sum, err
	}
	sum.Published++
	if err := d.waitDrained(ctx); err != nil {
		return sum, err
	}
	s := d.cons.Stats()
	sum.Filtered, sum.Created, sum.Updated = s.Filtered(), s.Created, s.Updated
	sum.DeadLettered, sum.Failed = s.DeadLettered, s.Failed
	if sum.CriticalFirst, err = d.criticalFirst(ctx, pub); err != nil {
		return sum, err
	}
	cancel()
	if err := <-done; err != nil {
		return sum, err
	}
	return sum, nil
}

// criticalFirst is the second act: a backlog of low-urgency items the cap holds
// back, then a critical item, which goes at once, ahead of them.
func (d *demo) criticalFirst(ctx context.Context, pub *publisher.Publisher) (criticalFirst, error) {
	cf := criticalFirst{Backlog: demoBacklog}
	before := d.sim.ImportCount()
	for i := range demoBacklog {
		it := ionix.ActionItem{ID: fmt.Sprintf("demo-backlog-%02d", i+1), Title: fmt.Sprintf("Outdated TLS configuration on www%d.example.com", i+1),
			Type: "PKI", Urgency: 5.5, FirstOpenedAt: "2026-11-30T09:00:00Z", Asset: fmt.Sprintf("www%d.example.com", i+1)}
		raw, _ := json.Marshal(it)
		if _, err := pub.Publish(ctx, raw, it, ionix.EventOpened); err != nil {
			return cf, err
		}
	}
	// The cap lets some through, then holds the rest back.
	if err := waitFor(ctx, time.Minute, func() bool { return d.sim.ImportCount() >= before+demoLetThrough }); err != nil {
		return cf, fmt.Errorf("the backlog's first items: %w", err)
	}
	cf.Waiting = demoBacklog - (d.sim.ImportCount() - before)
	critical := ionix.ActionItem{ID: "demo-critical-1", Title: "Remote code execution in the VPN gateway of vpn.example.com (actively exploited)",
		Type: "Vulnerability", Urgency: 9.8, FirstOpenedAt: "2026-12-01T22:14:00Z", Asset: "vpn.example.com", CVEs: []string{"CVE-2024-3400"}}
	raw, _ := json.Marshal(critical)
	published := time.Now()
	if _, err := pub.Publish(ctx, raw, critical, ionix.EventOpened); err != nil {
		return cf, err
	}
	var at time.Time
	if err := waitFor(ctx, time.Minute, func() bool {
		for _, r := range d.sim.Requests() {
			if r.Fields["u_correlation_id"] == "ionix:"+critical.ID && r.Number != "" {
				at, cf.Incident = r.At, r.Number
				return true
			}
		}
		return false
	}); err != nil {
		return cf, fmt.Errorf("the critical item: %w", err)
	}
	cf.WaitMs = at.Sub(published).Milliseconds()
	return cf, nil
}

// waitFor polls ok until it holds, or fails after limit.
func waitFor(ctx context.Context, limit time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// waitDrained waits until the consumer has nothing pending or unacknowledged.
func (d *demo) waitDrained(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cons, err := d.conn.js.Consumer(ctx, d.cfg.NATS.Stream, d.cfg.NATS.Consumer)
	if err != nil {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := cons.Info(ctx)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if info != nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("items still pending after 2m: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func ndjson(items []ionix.ActionItem) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, it := range items {
		_ = enc.Encode(it)
	}
	return b.Bytes()
}

// mostUrgentBelow picks the item with the highest urgency under limit (ties: first).
func mostUrgentBelow(items []ionix.ActionItem, limit float64) ionix.ActionItem {
	best := items[0]
	for _, it := range items {
		if it.Urgency < limit && (best.Urgency >= limit || it.Urgency > best.Urgency) {
			best = it
		}
	}
	return best
}

var priorityNames = map[string]string{"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}

func (d *demo) print(ctx context.Context, w io.Writer, count int, sum demoSummary) {
	fmt.Fprintf(w, "ionixsnow demo: %d sample IONIX action items -> embedded NATS JetStream -> ServiceNow emulator\n", count)
	fmt.Fprintf(w, "filter: IONIX urgency >= %g, all categories\n\n", d.cfg.Filter.UrgencyThreshold)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tPRIORITY\tIMPACT/URGENCY\tCATEGORY\tSHORT DESCRIPTION")
	for _, in := range d.sim.Incidents() {
		desc := in.ShortDescription
		if in.Updates > 0 {
			desc += "  [updated]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\n", in.Number, priorityNames[in.Priority], in.Impact, in.Urgency, in.Category, desc)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\npublished %d, filtered %d, created %d, updated %d, dead-lettered %d, failed %d\n",
		sum.Published, sum.Filtered, sum.Created, sum.Updated, sum.DeadLettered, sum.Failed)
	fmt.Fprintf(w, "ServiceNow saw %d import requests; filtered items were never sent.\n", d.sim.ImportCount())
	dls, err := dlq.New(d.conn.js, topologyOptions(d.cfg).Names).List(ctx, 10)
	if err != nil {
		fmt.Fprintf(w, "dead letters: %v\n", err)
	}
	for _, dl := range dls {
		fmt.Fprintf(w, "dead letter (stream seq %d, %s): %s\n", dl.StreamSeq, dl.Subject, dl.Reason)
	}
	cf := sum.CriticalFirst
	fmt.Fprintf(w, "\ncritical first: %d more low-urgency items published; the cap (%d an hour here) let %d through and holds %d back.\n",
		cf.Backlog, d.cfg.Cap.MaxPerWindow, cf.Backlog-cf.Waiting, cf.Waiting)
	fmt.Fprintf(w, "then a critical item (IONIX urgency 9.8): %s created %d ms after it was published, ahead of the %d waiting.\n",
		cf.Incident, cf.WaitMs, cf.Waiting)
}
