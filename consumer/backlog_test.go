//go:build backlog

package consumer_test

// The backlog test: BACKLOG_ITEMS action items (default 1,000,000) are published into
// an in-process nats-server (file store in a temporary directory), then the real
// `ionixsnow consume` binary, run as a child process with the cap raised and
// concurrency 16, works through the backlog against the ServiceNow emulator (over
// HTTP, in this process) until it has handled BACKLOG_PROCESS items (default
// 100,000) or BACKLOG_DURATION (default 10m) has passed. The child is sampled every
// second: VmRSS from /proc/<pid>/status, CPU time from /proc/<pid>/stat, Go heap in
// use and goroutines from its /metrics. Its RSS must stay under BACKLOG_MAX_RSS_MB
// (default 100) and flat: no more than 20 MB above its value at the end of the
// warm-up (10 s), and no upward trend (the median of the last third of the samples
// after the warm-up at most 10 MB above the median of the first third).
//
//	go test -tags backlog -run TestBacklog -count=1 -timeout 60m -v ./consumer/
//
// or scripts/backlog. The consumer runs alone in its process: the nats-server and
// the emulator (which keeps every incident and every request in memory) live in the
// test process, whose memory is reported but not asserted. IONIXSNOW_* variables the
// test does not set pass through to the consume process (IONIXSNOW_CAP_WINDOW=10s
// keeps the budget ledger small; with the default hour it holds one stamp per send).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// Limits of the backlog test.
const (
	backlogConcurrency = 16
	backlogWarmUp      = 10 * time.Second
	backlogMaxGrowthMB = 20.0 // max RSS after the warm-up - RSS at the end of the warm-up
	backlogMaxTrendMB  = 10.0 // median of the last third - median of the first third
	backlogPoolSize    = 4096 // distinct sample items the backlog cycles through
)

func backlogEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func backlogEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// backlogSample is one reading of the consume process.
type backlogSample struct {
	at        time.Duration // since the consumer started
	processed int           // acknowledged or terminated on the stream (published - pending - ack pending)
	rssMB     float64       // VmRSS of the consume process
	heapMB    float64       // its Go heap in use (go_memstats_heap_inuse_bytes)
	goroutine int           // its goroutines
	cpu       time.Duration // its user + system CPU time so far
	testRSSMB float64       // VmRSS of this process (nats-server, emulator, test)
}

func TestBacklog(t *testing.T) {
	nItems := backlogEnvInt(t, "BACKLOG_ITEMS", 1_000_000)
	target := backlogEnvInt(t, "BACKLOG_PROCESS", 100_000)
	limit := backlogEnvDuration(t, "BACKLOG_DURATION", 10*time.Minute)
	maxRSS := float64(backlogEnvInt(t, "BACKLOG_MAX_RSS_MB", 100))
	target = min(target, nItems)
	wallStart := time.Now()
	fmt.Printf("backlog: items=%d process=%d duration<=%s concurrency=%d max_rss=%.0fMB\n",
		nItems, target, limit, backlogConcurrency, maxRSS)

	bin := buildIonixsnow(t)

	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	names := topology.DefaultNames()
	stream, err := topology.EnsureStream(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := topology.EnsureDLQ(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sim := emulator.New(emulator.Options{})
	snow := httptest.NewServer(sim)
	t.Cleanup(snow.Close)

	// Publish the backlog as `ionixsnow publish` does: NDJSON through PublishAll
	// (validation, de-duplication ids, 256 publishes in flight).
	pubStart := time.Now()
	pr, pw := io.Pipe()
	bytesOut := make(chan int64, 1)
	go func() { bytesOut <- writeBacklog(pw, nItems) }()
	res, err := publisher.New(js, "").PublishAll(ctx, pr, ionix.EventOpened, &publisher.PublishAllOptions{
		ProgressInterval: 5 * time.Second,
		Progress: func(p publisher.Progress) {
			if !p.Done {
				fmt.Printf("backlog: published %d (%.0f/s)\n", p.Published, p.Rate())
			}
		},
	})
	_ = pr.CloseWithError(err) // stops the writer if publishing failed
	total := <-bytesOut
	pubTime := time.Since(pubStart)
	if err != nil {
		t.Fatalf("publish: %v (result %+v)", err, res)
	}
	if res.Published != nItems || res.Invalid != 0 || res.Duplicates != 0 {
		t.Fatalf("published %d, invalid %d, duplicates %d; want %d, 0, 0", res.Published, res.Invalid, res.Duplicates, nItems)
	}
	si, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("backlog: published %d items (%.0f bytes each, stream %.0f MB) in %.1fs: %.0f items/s\n",
		nItems, float64(total)/float64(nItems), float64(si.State.Bytes)/1e6, pubTime.Seconds(), float64(nItems)/pubTime.Seconds())

	// The consumer, alone in its process.
	metricsAddr := natstest.FreeAddrs(t, 1)[0]
	child := exec.Command(bin, "consume")
	child.Env = append(os.Environ(),
		"IONIXSNOW_NATS_URL="+srv.URL(),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL="+snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID=ionix", "IONIXSNOW_SERVICENOW_CLIENT_SECRET=ionix",
		"IONIXSNOW_SERVICENOW_USERNAME=ionix", "IONIXSNOW_SERVICENOW_PASSWORD=ionix",
		"IONIXSNOW_CAP_MAX_PER_WINDOW=100000000",
		"IONIXSNOW_CONSUMER_CONCURRENCY="+strconv.Itoa(backlogConcurrency),
		"IONIXSNOW_LOG_LEVEL=warn",
		"IONIXSNOW_HTTP_LISTEN="+metricsAddr,
	)
	logs := &tailBuffer{max: 64 << 10}
	child.Stdout, child.Stderr = logs, logs
	consStart := time.Now()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	t.Cleanup(func() { _ = child.Process.Kill() })
	pid := child.Process.Pid

	var cons jetstream.Consumer
	deadline := time.Now().Add(30 * time.Second)
	for cons == nil {
		if c, err := js.Consumer(ctx, names.Stream, names.Consumer); err == nil {
			cons = c
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("consume exited before setting up its consumer (%v):\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume did not create its consumer within 30s:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	fmt.Printf("backlog: %6s %10s %9s %11s %8s %9s %10s %11s\n",
		"t(s)", "processed", "items/s", "CPU µs/item", "RSS MB", "heap MB", "goroutines", "test RSS MB")
	var samples []backlogSample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	stopReason := ""
	for stopReason == "" {
		select {
		case err := <-exited:
			t.Fatalf("consume exited on its own (%v):\n%s", err, logs)
		case <-tick.C:
		}
		s := backlogSample{at: time.Since(consStart)}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatalf("consumer info: %v", err)
		}
		s.processed = nItems - int(info.NumPending) - info.NumAckPending
		if s.rssMB, err = vmRSSMB(pid); err != nil {
			t.Fatalf("RSS of consume: %v", err)
		}
		if s.cpu, err = cpuTime(pid); err != nil {
			t.Fatalf("CPU time of consume: %v", err)
		}
		s.testRSSMB, _ = vmRSSMB(os.Getpid())
		if m, err := scrapeMetrics(metricsAddr, "go_memstats_heap_inuse_bytes", "go_goroutines"); err == nil {
			s.heapMB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
			s.goroutine = int(m["go_goroutines"])
		}
		rate, cpuPerItem := 0.0, 0.0
		if n := len(samples); n > 0 {
			prev := samples[n-1]
			rate = float64(s.processed-prev.processed) / (s.at - prev.at).Seconds()
			cpuPerItem = perItemMicros(s.cpu-prev.cpu, s.processed-prev.processed)
		}
		samples = append(samples, s)
		fmt.Printf("backlog: %6.0f %10d %9.0f %11.0f %8.1f %9.1f %10d %11.0f\n",
			s.at.Seconds(), s.processed, rate, cpuPerItem, s.rssMB, s.heapMB, s.goroutine, s.testRSSMB)
		switch {
		case s.processed >= target:
			stopReason = fmt.Sprintf("%d items processed", s.processed)
		case s.at >= limit:
			stopReason = fmt.Sprintf("%s passed", limit)
		}
	}
	consTime := time.Since(consStart)

	// SIGTERM: stop fetching, finish what is in flight, exit 0.
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("consume after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("consume did not exit within 45s of SIGTERM:\n%s", logs)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	processed := nItems - int(info.NumPending) - info.NumAckPending
	incidents := len(sim.Incidents())
	di, err := dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ledgerBytes := 0
	if kv, err := js.KeyValue(ctx, names.BudgetBucket); err == nil {
		if e, err := kv.Get(ctx, "window"); err == nil {
			ledgerBytes = len(e.Value())
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	last := samples[len(samples)-1]
	rss, heap := column(samples, func(s backlogSample) float64 { return s.rssMB }), column(samples, func(s backlogSample) float64 { return s.heapMB })
	fmt.Printf("backlog: stopped after %s (%s); %d items processed in %.1fs: %.0f items/s\n",
		consTime.Round(time.Second), stopReason, processed, consTime.Seconds(), float64(processed)/consTime.Seconds())
	var steadyFrom *backlogSample
	for i := range samples {
		if samples[i].at >= backlogWarmUp {
			steadyFrom = &samples[i]
			break
		}
	}
	if steadyFrom != nil && last.at > steadyFrom.at {
		fmt.Printf("backlog: after the warm-up (%s): %.0f items/s\n", backlogWarmUp,
			float64(last.processed-steadyFrom.processed)/(last.at-steadyFrom.at).Seconds())
	}
	if n := len(samples); n >= 3 {
		first, second, end := samples[0], samples[n/3], samples[n-1-n/3]
		fmt.Printf("backlog: consume CPU per item: %.0f µs overall, %.0f µs in the first third, %.0f µs in the last third\n",
			perItemMicros(last.cpu, last.processed), perItemMicros(second.cpu-first.cpu, second.processed-first.processed),
			perItemMicros(last.cpu-end.cpu, last.processed-end.processed))
	}
	fmt.Printf("backlog: consume RSS MB min/median/max %.1f / %.1f / %.1f; Go heap in use MB %.1f / %.1f / %.1f\n",
		slices.Min(rss), median(rss), slices.Max(rss), slices.Min(heap), median(heap), slices.Max(heap))
	fmt.Printf("backlog: test process (nats-server, emulator with %d incidents) RSS %.0f MB, Go heap in use %.0f MB\n",
		incidents, last.testRSSMB, float64(ms.HeapInuse)/(1<<20))
	fmt.Printf("backlog: budget ledger %d bytes; dead letters %d; wall time %s\n",
		ledgerBytes, di.State.Msgs, time.Since(wallStart).Round(time.Second))

	// What must hold.
	if processed < min(target, 1000) {
		t.Errorf("only %d items processed in %s", processed, consTime)
	}
	if incidents < processed {
		t.Errorf("%d incidents for %d processed items: every processed item must be an incident", incidents, processed)
	}
	if di.State.Msgs != 0 {
		t.Errorf("%d dead letters, want none", di.State.Msgs)
	}
	if m := slices.Max(rss); m >= maxRSS {
		t.Errorf("consume RSS reached %.1f MB, want under %.0f MB", m, maxRSS)
	}
	var steady []float64
	for _, s := range samples {
		if s.at >= backlogWarmUp {
			steady = append(steady, s.rssMB)
		}
	}
	if len(steady) < 6 {
		t.Errorf("only %d samples after the warm-up: run longer (BACKLOG_PROCESS, BACKLOG_DURATION)", len(steady))
		return
	}
	base := steady[0]
	growth := slices.Max(steady) - base
	third := len(steady) / 3
	trend := median(steady[len(steady)-third:]) - median(steady[:third])
	fmt.Printf("backlog: after the warm-up: RSS %.1f MB at %s, growth to max %+.1f MB (limit %.0f), trend last-third - first-third medians %+.1f MB (limit %.0f)\n",
		base, backlogWarmUp, growth, backlogMaxGrowthMB, trend, backlogMaxTrendMB)
	if growth >= backlogMaxGrowthMB {
		t.Errorf("consume RSS grew by %.1f MB after the warm-up, want under %.0f MB", growth, backlogMaxGrowthMB)
	}
	if trend >= backlogMaxTrendMB {
		t.Errorf("consume RSS trends upward: last third's median %.1f MB above the first third's, want under %.0f MB", trend, backlogMaxTrendMB)
	}
}

// buildIonixsnow builds the ionixsnow binary into a temporary directory.
func buildIonixsnow(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ionixsnow")
	build := exec.Command("go", "build", "-o", bin, "github.com/ionix/ionixsnow/cmd/ionixsnow")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeBacklog writes n NDJSON action items to w and closes it; it returns the bytes
// written. The items cycle through backlogPoolSize sample items (every category,
// urgencies 1–10, ≈1 kB each) with unique ids, so each one is a distinct message.
func writeBacklog(w *io.PipeWriter, n int) int64 {
	pool := ionix.SampleItems(backlogPoolSize, 1)
	const idPlaceholder = "backlog-0000000"
	tails := make([][]byte, len(pool))
	for i, it := range pool {
		it.ID = idPlaceholder
		it.Urgency = max(it.Urgency, 1) // every item passes the default urgency threshold
		raw, err := it.MarshalJSON()
		if err != nil {
			_ = w.CloseWithError(err)
			return 0
		}
		head := []byte(`{"id":"` + idPlaceholder + `"`)
		if !bytes.HasPrefix(raw, head) {
			_ = w.CloseWithError(fmt.Errorf("sample item does not start with its id: %.40s", raw))
			return 0
		}
		tails[i] = raw[len(head):]
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var total int64
	line := make([]byte, 0, 4096)
	for i := range n {
		line = fmt.Appendf(line[:0], `{"id":"backlog-%07d"`, i)
		line = append(append(line, tails[i%len(tails)]...), '\n')
		if _, err := bw.Write(line); err != nil {
			return total // the reader gave up
		}
		total += int64(len(line))
	}
	if err := bw.Flush(); err != nil {
		return total
	}
	_ = w.Close()
	return total
}

// vmRSSMB reads VmRSS of a process from /proc/<pid>/status, in MiB.
func vmRSSMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// cpuTime reads a process's user + system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces; utime and
	// stime are fields 14 and 15, the 12th and 13th after it.
	_, rest, ok := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %.80s", pid, b)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

func perItemMicros(cpu time.Duration, items int) float64 {
	if items <= 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(items)
}

// scrapeMetrics reads the named unlabelled metrics from a Prometheus text endpoint.
func scrapeMetrics(addr string, names ...string) (map[string]float64, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

func column(samples []backlogSample, f func(backlogSample) float64) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		out[i] = f(s)
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// tailBuffer keeps the last max bytes written to it; safe for a process writing
// while the test reads.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
