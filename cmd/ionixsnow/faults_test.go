package main

// Fault tests that run the real `ionixsnow consume` binary as separate processes
// against a NATS server in this process and the ServiceNow emulator: consumers
// killed with SIGKILL while items flow, a ServiceNow outage seen by two processes,
// and poison messages. Every wait is on a condition with a deadline; the random
// kill timing comes from a seeded generator (fault injection, not synchronisation).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// faultRig is a NATS server in this process, the ServiceNow emulator over HTTP, a
// JetStream connection for the test, and the environment a consume process needs.
type faultRig struct {
	ns       *embedded.Server
	listen   string // host:port of the NATS server (kept over restarts)
	storeDir string
	sim      *emulator.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	env      []string
}

// newFaultRig starts the servers and creates the stream and the dead-letter stream (the
// consume processes create the rest). extraEnv is appended to the base environment.
func newFaultRig(t *testing.T, simOpts emulator.Options, extraEnv ...string) *faultRig {
	t.Helper()
	r := &faultRig{listen: freeAddr(t), storeDir: t.TempDir()}
	ns, err := embedded.Start(embedded.Options{Listen: r.listen, StoreDir: r.storeDir})
	if err != nil {
		t.Fatal(err)
	}
	r.ns = ns
	t.Cleanup(func() { r.ns.Stop() })
	r.sim = emulator.New(simOpts)
	snow := httptest.NewServer(r.sim)
	t.Cleanup(snow.Close)

	// The test's own connection rides out a NATS restart (the soak test restarts it).
	r.nc, err = nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.nc.Close)
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := topology.EnsureStream(ctx, r.js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.EnsureDLQ(ctx, r.js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	r.env = append([]string{
		"IONIXSNOW_NATS_URL=nats://" + r.listen,
		"IONIXSNOW_SERVICENOW_INSTANCE_URL=" + snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID=ionix", "IONIXSNOW_SERVICENOW_CLIENT_SECRET=ionix",
		"IONIXSNOW_SERVICENOW_USERNAME=ionix", "IONIXSNOW_SERVICENOW_PASSWORD=ionix",
		"IONIXSNOW_LOG_FORMAT=json", "IONIXSNOW_LOG_LEVEL=info",
		"IONIXSNOW_HTTP_LISTEN=127.0.0.1:0",
		"IONIXSNOW_CAP_MAX_PER_WINDOW=1000000",
	}, extraEnv...)
	return r
}

// faultItems returns n valid items with distinct ids <prefix>-00000…, every one
// above the default urgency threshold.
func faultItems(prefix string, n int, seed int64) []ionix.ActionItem {
	items := ionix.SampleItems(n, seed)
	for i := range items {
		items[i].ID = fmt.Sprintf("%s-%05d", prefix, i)
		if items[i].Urgency < 1 {
			items[i].Urgency = 5
		}
	}
	return items
}

// publishItem publishes one item as the publish command does.
func publishItem(ctx context.Context, p *publisher.Publisher, it ionix.ActionItem) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	_, err = p.Publish(ctx, raw, it, ionix.EventOpened)
	return err
}

// fleet is a set of consume processes of which any can be killed and replaced.
type fleet struct {
	t     *testing.T
	env   []string
	procs []*proc // running
	all   []*proc // every process started, for the logs
	kills int
}

// newFleet starts n consume processes one after the other, each once the one before
// has set up the topology: nats-server 2.15.2 has a data race (fileStore.ConsumerStore
// reads fs.cfg unlocked while fileStore.UpdateConfig writes it) that -race reports
// when one process updates the stream while another creates the consumer.
func newFleet(t *testing.T, env []string, n int) *fleet {
	f := &fleet{t: t, env: env}
	for range n {
		f.procs = append(f.procs, f.start())
		f.waitConsuming()
	}
	return f
}

func (f *fleet) start() *proc {
	p := startConsume(f.t, "", f.env)
	f.all = append(f.all, p)
	return p
}

// kill9 sends SIGKILL to process i, waits for it to die and starts a new one in its
// place.
func (f *fleet) kill9(i int) {
	f.t.Helper()
	p := f.procs[i]
	if err := p.cmd.Process.Kill(); err != nil {
		f.t.Fatalf("kill -9: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		f.t.Fatal("a process killed with SIGKILL did not exit within 10s")
	}
	f.kills++
	f.procs[i] = f.start()
}

// waitConsuming waits until every running process has set up its consumer (so that
// the next kill hits a process that takes part, and no two processes set up the
// topology at once; see newFleet).
func (f *fleet) waitConsuming() {
	f.t.Helper()
	for _, p := range f.procs {
		waitCond(f.t, 20*time.Second, "consume to start", func() bool { return len(logLines(p, "consuming")) > 0 },
			func() string { return tailLines(p.logs.String(), 20) })
	}
}

// replaceExited restarts every process that exited on its own (which consume must
// never do) and reports each as an error with its output.
func (f *fleet) replaceExited() {
	f.t.Helper()
	for i, p := range f.procs {
		select {
		case err := <-p.exited:
			f.t.Errorf("consume process %d exited on its own (%v); its output ends:\n%s", p.cmd.Process.Pid, err, tailLines(p.logs.String(), 40))
			f.procs[i] = f.start()
		default:
		}
	}
}

// stopAll stops every running process with SIGTERM and expects exit 0.
func (f *fleet) stopAll() {
	f.t.Helper()
	for _, p := range f.procs {
		p.stop(f.t)
	}
	f.procs = nil
}

// count is how many log lines with the given message every process started wrote.
func (f *fleet) count(message string) int {
	n := 0
	for _, p := range f.all {
		n += len(logLines(p, message))
	}
	return n
}

// logsTail is the end of every process's output, for failure messages.
func (f *fleet) logsTail(lines int) string {
	var b strings.Builder
	for _, p := range f.all {
		fmt.Fprintf(&b, "--- consume pid %d ---\n%s\n", p.cmd.Process.Pid, tailLines(p.logs.String(), lines))
	}
	return b.String()
}

func tailLines(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// logLines returns the JSON log entries of p whose message is message.
func logLines(p *proc, message string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var entry map[string]any
		if json.Unmarshal(line, &entry) != nil {
			continue
		}
		if entry["message"] == message {
			out = append(out, entry)
		}
	}
	return out
}

// Log messages of consumer/breaker.go.
const (
	msgPaused       = "sending paused: ServiceNow is down"
	msgResumed      = "ServiceNow accepts items again; sending resumed"
	msgStillFailing = "ServiceNow still failing; sending stays paused"
)

// waitCond polls cond until it holds or timeout passes; on timeout it fails the
// test with what was waited for and diag().
func waitCond(t *testing.T, timeout time.Duration, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, diag())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// consumerIdle reports whether the durable consumer has nothing pending and nothing
// awaiting an ack: every message was settled (acked or terminated).
func (r *faultRig) consumerIdle() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := r.js.Consumer(ctx, topology.DefaultStream, topology.DefaultConsumer)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func (r *faultRig) consumerState() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := r.js.Consumer(ctx, topology.DefaultStream, topology.DefaultConsumer)
	if err != nil {
		return "consumer: " + err.Error()
	}
	info, err := c.Info(ctx)
	if err != nil {
		return "consumer info: " + err.Error()
	}
	return fmt.Sprintf("consumer: pending %d, ack pending %d, redelivered %d, delivered %d, ack floor %d",
		info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered.Stream, info.AckFloor.Stream)
}

// deadLetters returns every message of the dead-letter stream.
func (r *faultRig) deadLetters(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, topology.DefaultDLQStream)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

func (r *faultRig) deadLetterCount() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, topology.DefaultDLQStream)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// tally compares the incidents with the items that should have made them.
type tally struct {
	incidents   int // incidents of the items
	lost        []string
	multiInsert []string // incidents with Inserts > 1
	dupCorr     []string // correlation ids with more than one incident
	updates     int
	foreign     int // incidents of no item
}

func tallyIncidents(incs []emulator.Incident, items []ionix.ActionItem) tally {
	var tl tally
	want := make(map[string]bool, len(items))
	for _, it := range items {
		want["ionix:"+it.ID] = true
	}
	byCorr := make(map[string]int, len(incs))
	for _, in := range incs {
		if !want[in.CorrelationID] {
			tl.foreign++
			continue
		}
		tl.incidents++
		byCorr[in.CorrelationID]++
		tl.updates += in.Updates
		if in.Inserts > 1 {
			tl.multiInsert = append(tl.multiInsert, fmt.Sprintf("%s (%s, %d inserts)", in.Number, in.CorrelationID, in.Inserts))
		}
	}
	for _, it := range items {
		switch n := byCorr["ionix:"+it.ID]; {
		case n == 0:
			tl.lost = append(tl.lost, it.ID)
		case n > 1:
			tl.dupCorr = append(tl.dupCorr, fmt.Sprintf("ionix:%s (%d incidents)", it.ID, n))
		}
	}
	return tl
}

func (tl tally) duplicates() int { return len(tl.multiInsert) + len(tl.dupCorr) }

// firstFew shows at most n entries of s.
func firstFew(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(" … (%d more)", len(s)-n)
}

// testSeed is the seed of the random fault timing: FAULT_SEED when set, else the
// clock; the test logs it so a failing run can be repeated.
func testSeed(t *testing.T, envVar string) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envVar); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envVar, v, err)
		}
		seed = s
	}
	t.Logf("seed %d (set %s=%d to repeat the fault timing)", seed, envVar, seed)
	return seed
}

// TestKill9ConsumersWhileItemsFlow kills consume processes with SIGKILL, one at a
// time at random moments, while items are published, and starts a new one in each
// one's place. Every item must end as exactly one incident (a post in the crash
// window is re-sent as an update, never a second insert), nothing is dead-lettered,
// and the import requests stay bounded by one re-send per message in flight at a
// kill.
func TestKill9ConsumersWhileItemsFlow(t *testing.T) {
	const (
		nItems      = 300
		nProcs      = 3
		nKills      = 10
		concurrency = 4
	)
	rng := rand.New(rand.NewPCG(testSeed(t, "FAULT_SEED"), 9))
	// A little latency keeps posts in flight when a process dies.
	r := newFaultRig(t, emulator.Options{Latency: 20 * time.Millisecond, LatencyJitter: 40 * time.Millisecond, Seed: 9},
		"IONIXSNOW_CONSUMER_CONCURRENCY="+strconv.Itoa(concurrency),
		"IONIXSNOW_CONSUMER_ACK_WAIT=2s",
		"IONIXSNOW_CONSUMER_MAX_BACKOFF=1s",
		"IONIXSNOW_CONSUMER_DRAIN_TIMEOUT=5s")
	items := faultItems("kill", nItems, 91)
	f := newFleet(t, r.env, nProcs)

	// Publish in a stream over the whole kill phase.
	var published atomic.Int64
	pubErr := make(chan error, 1)
	stopPub := make(chan struct{})
	go func() {
		p := publisher.New(r.js, "")
		tick := time.NewTicker(15 * time.Millisecond) // ≈ 4.5 s for 300 items
		defer tick.Stop()
		for _, it := range items {
			select {
			case <-tick.C:
			case <-stopPub:
				pubErr <- errors.New("publishing stopped early")
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := publishItem(ctx, p, it)
			cancel()
			if err != nil {
				pubErr <- err
				return
			}
			published.Add(1)
		}
		pubErr <- nil
	}()
	defer close(stopPub)

	// Kill at random moments, every 200–600 ms, at least nKills times and until the
	// last item is published.
	var pubDone bool
	for f.kills < nKills || !pubDone {
		timer := time.NewTimer(time.Duration(200+rng.IntN(400)) * time.Millisecond)
		select {
		case err := <-pubErr:
			timer.Stop()
			if err != nil {
				t.Fatalf("publish after %d items: %v", published.Load(), err)
			}
			pubDone = true
			continue
		case <-timer.C:
		}
		f.replaceExited()
		f.waitConsuming()
		f.kill9(rng.IntN(len(f.procs)))
	}
	t.Logf("%d kills while %d items were published", f.kills, published.Load())

	diag := func() string {
		tl := tallyIncidents(r.sim.Incidents(), items)
		return fmt.Sprintf("%d of %d incidents (missing: %s); %s; %d imports\n%s",
			tl.incidents, nItems, firstFew(tl.lost, 10), r.consumerState(), r.sim.ImportCount(), f.logsTail(30))
	}
	waitCond(t, 30*time.Second, "every item to become an incident", func() bool {
		return len(r.sim.Incidents()) >= nItems
	}, diag)
	// Redeliveries of killed processes' messages settle after AckWait.
	waitCond(t, 20*time.Second, "the consumer to settle every message", r.consumerIdle, diag)
	f.replaceExited()
	f.stopAll()

	tl := tallyIncidents(r.sim.Incidents(), items)
	imports := r.sim.ImportCount()
	skipped := f.count("redelivery already ticketed; acknowledging without a post")
	aborted := 0 // import requests whose client died before the answer
	for _, rq := range r.sim.Requests() {
		if strings.HasPrefix(rq.Path, "/api/now/import/") && rq.Status == 0 {
			aborted++
		}
	}
	t.Logf("kills %d: incidents %d, updates (crash-window re-posts) %d, imports %d (%d cut off by a kill), redeliveries acked from the ledger without a post %d",
		f.kills, tl.incidents, tl.updates, imports, aborted, skipped)
	if tl.incidents != nItems || len(tl.lost) > 0 || tl.foreign > 0 {
		t.Errorf("%d incidents for %d items (lost: %s; %d of unknown items)", tl.incidents, nItems, firstFew(tl.lost, 10), tl.foreign)
	}
	if tl.duplicates() > 0 {
		t.Errorf("duplicated incidents: %s %s", firstFew(tl.multiInsert, 10), firstFew(tl.dupCorr, 10))
	}
	if n := len(r.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	// Each kill can cost at most one re-send per message in flight (concurrency),
	// plus a little slack for a request that was already on its way.
	if limit := nItems + f.kills*concurrency + 5; imports > limit {
		t.Errorf("%d import requests for %d items and %d kills, want at most %d", imports, nItems, f.kills, limit)
	}
	if tl.updates > imports-nItems {
		t.Errorf("%d updates but only %d import requests beyond the items", tl.updates, imports-nItems)
	}
	if t.Failed() {
		t.Logf("process output:\n%s", f.logsTail(40))
	}
}

// TestServiceNowOutageWithTwoProcesses switches a 503 outage on at the emulator
// once items flow through two consume processes: both pause (and say so), probe at
// most once per backoff interval, resume on their own after the outage, and every
// item arrives with nothing dead-lettered.
func TestServiceNowOutageWithTwoProcesses(t *testing.T) {
	const (
		nBefore     = 10
		nDuring     = 40
		nProcs      = 2
		concurrency = 4
		maxBackoff  = time.Second
		outageFor   = 4 * time.Second
	)
	r := newFaultRig(t, emulator.Options{},
		"IONIXSNOW_CONSUMER_CONCURRENCY="+strconv.Itoa(concurrency),
		"IONIXSNOW_CONSUMER_MAX_BACKOFF="+maxBackoff.String(),
		"IONIXSNOW_CONSUMER_ACK_WAIT=5s")
	items := faultItems("outage", nBefore+nDuring, 17)
	f := newFleet(t, r.env, nProcs)
	pub := publisher.New(r.js, "")
	publish := func(items []ionix.ActionItem) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, it := range items {
			if err := publishItem(ctx, pub, it); err != nil {
				t.Fatal(err)
			}
		}
	}
	diag := func() string {
		tl := tallyIncidents(r.sim.Incidents(), items)
		return fmt.Sprintf("%d of %d incidents; %s; emulator outage %+v\n%s",
			tl.incidents, len(items), r.consumerState(), r.sim.Config().Outage, f.logsTail(30))
	}

	publish(items[:nBefore])
	waitCond(t, 20*time.Second, "the first items to become incidents", func() bool {
		return len(r.sim.Incidents()) >= nBefore
	}, diag)

	// The outage: every request answers 503 for outageFor, then the emulator ends it.
	cfg := r.sim.Config()
	cfg.Outage = emulator.Outage{Mode: emulator.Outage503, For: emulator.Duration(outageFor)}
	if err := r.sim.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	outageEnd := r.sim.Config().Outage.Until
	publish(items[nBefore:])
	for _, p := range f.procs {
		waitCond(t, outageFor, "both processes to pause sending", func() bool {
			return len(logLines(p, msgPaused)) > 0
		}, diag)
	}
	waitCond(t, outageFor+5*time.Second, "the outage to end", func() bool {
		return r.sim.Config().Outage.Mode == emulator.OutageOff
	}, diag)
	waitCond(t, 20*time.Second, "every item to become an incident", func() bool {
		return len(r.sim.Incidents()) >= len(items)
	}, diag)
	for _, p := range f.procs {
		waitCond(t, 5*time.Second, "both processes to log that sending resumed", func() bool {
			return len(logLines(p, msgResumed)) > 0
		}, diag)
	}
	waitCond(t, 10*time.Second, "the consumer to settle every message", r.consumerIdle, diag)
	f.stopAll()

	tl := tallyIncidents(r.sim.Incidents(), items)
	if tl.incidents != len(items) || tl.duplicates() > 0 {
		t.Errorf("%d incidents for %d items (lost %s; duplicated %s %s)", tl.incidents, len(items),
			firstFew(tl.lost, 10), firstFew(tl.multiInsert, 5), firstFew(tl.dupCorr, 5))
	}
	if n := len(r.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters after an outage, want none", n)
	}

	var failed, recovered int
	var firstOK time.Time
	for _, rq := range r.sim.Requests() {
		if !strings.HasPrefix(rq.Path, "/api/now/import/") {
			continue
		}
		switch {
		case strings.Contains(rq.Fault, "outage"):
			failed++
		case rq.Status == 201 && rq.At.After(outageEnd):
			recovered++
			if firstOK.IsZero() {
				firstOK = rq.At
			}
		}
	}
	// Per process: the posts in flight when the outage began, then at most one probe
	// per backoff interval while it lasts, plus the one that meets its end.
	limit := nProcs * (concurrency + int(outageFor/maxBackoff) + 1)
	resumeAfter := firstOK.Sub(outageEnd)
	var perProc []string
	maxProbes := int(outageFor / maxBackoff)
	for _, p := range f.all {
		probes := len(logLines(p, msgStillFailing))
		perProc = append(perProc, fmt.Sprintf("pid %d: %d failures while paused", p.cmd.Process.Pid, probes))
		if probes > maxProbes {
			t.Errorf("pid %d: %d failed probes during a %s outage, want at most one per %s (%d): %v", p.cmd.Process.Pid, probes, outageFor, maxBackoff, maxProbes, logLines(p, msgStillFailing))
		}
	}
	t.Logf("outage %s: %d failed import requests (limit %d; %s); first accepted import %s after the outage ended; pauses logged %d, resumes %d",
		outageFor, failed, limit, strings.Join(perProc, "; "), resumeAfter.Round(time.Millisecond), f.count(msgPaused), f.count(msgResumed))
	if failed == 0 {
		t.Error("no import request met the outage; the test did not test it")
	}
	if failed > limit {
		t.Errorf("%d import requests failed during a %s outage, want at most %d (2 processes × (concurrency + one probe per %s + 1))",
			failed, outageFor, limit, maxBackoff)
	}
	if firstOK.IsZero() {
		t.Error("no import was accepted after the outage")
	} else if resumeAfter > maxBackoff+2*time.Second {
		t.Errorf("sending resumed %s after the outage ended, want within one backoff interval (%s) and a little", resumeAfter, maxBackoff)
	}
	for _, p := range f.all {
		for _, e := range logLines(p, msgPaused) {
			if e["level"] != "warn" {
				t.Errorf("pause logged at level %v, want warn: %v", e["level"], e)
			}
		}
	}
	if t.Failed() {
		t.Logf("process output:\n%s", f.logsTail(60))
	}
}

// TestPoisonMessagesWithProcesses puts messages on the stream that can never become
// incidents (not JSON; JSON without a type; an item ServiceNow's transform rejects)
// among good items: the good items all arrive, and the dead-letter stream holds
// exactly the three poison messages with their reason, subject and stream sequence.
func TestPoisonMessagesWithProcesses(t *testing.T) {
	const rejectedTitle = "Rejected by the onBefore transform script"
	r := newFaultRig(t, emulator.Options{OnBefore: func(row map[string]string) (string, string) {
		if row["u_name"] == rejectedTitle {
			return "error", "rejected by onBefore script"
		}
		return "", ""
	}}, "IONIXSNOW_CONSUMER_MAX_BACKOFF=1s", "IONIXSNOW_CONSUMER_ACK_WAIT=5s")
	good := faultItems("good", 20, 5)
	f := newFleet(t, r.env, 1)
	p := f.procs[0]
	pub := publisher.New(r.js, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const subject = "ionix.action_items.opened.vulnerability"
	type poison struct {
		name, why string
		seq       uint64
		subject   string
		data      []byte
	}
	rejected := faultItems("rejected", 1, 3)[0]
	rejected.Title, rejected.Type = rejectedTitle, "Vulnerability"
	rejectedRaw, _ := json.Marshal(rejected)
	poisons := []*poison{
		{name: "not JSON", why: "not valid JSON", subject: subject, data: []byte("{this is not json")},
		{name: "JSON without a type", why: "missing type", subject: subject,
			data: []byte(`{"id":"no-type-1","title":{"label":"An item without a type"},"urgency":{"urgency":8.2}}`)},
		{name: "rejected by ServiceNow", why: "rejected by onBefore script", subject: subject, data: rejectedRaw},
	}
	publishPoison := func(ps *poison) {
		t.Helper()
		msg := nats.NewMsg(ps.subject)
		msg.Header.Set(topology.HeaderEvent, string(ionix.EventOpened))
		msg.Data = ps.data
		ack, err := r.js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatalf("publish %s: %v", ps.name, err)
		}
		ps.seq = ack.Sequence
	}
	for i, it := range good {
		if err := publishItem(ctx, pub, it); err != nil {
			t.Fatal(err)
		}
		if i%7 == 3 {
			publishPoison(poisons[i/7])
		}
	}

	diag := func() string {
		return fmt.Sprintf("%d incidents, %d dead letters; %s\n%s", len(r.sim.Incidents()), r.deadLetterCount(),
			r.consumerState(), tailLines(p.logs.String(), 40))
	}
	waitCond(t, 30*time.Second, "the good items to become incidents and the poison to be dead-lettered", func() bool {
		return len(r.sim.Incidents()) >= len(good) && r.deadLetterCount() >= len(poisons)
	}, diag)
	waitCond(t, 10*time.Second, "the consumer to settle every message", r.consumerIdle, diag)
	f.stopAll()

	tl := tallyIncidents(r.sim.Incidents(), good)
	if tl.incidents != len(good) || tl.foreign != 0 || tl.duplicates() != 0 {
		t.Errorf("%d incidents of the %d good items (lost %s), %d other incidents, %d duplicated",
			tl.incidents, len(good), firstFew(tl.lost, 10), tl.foreign, tl.duplicates())
	}
	dls := r.deadLetters(t)
	if len(dls) != len(poisons) {
		t.Errorf("%d dead letters, want exactly %d", len(dls), len(poisons))
	}
	for _, ps := range poisons {
		i := slices.IndexFunc(dls, func(m *jetstream.RawStreamMsg) bool {
			return m.Header.Get(topology.HeaderDLQStreamSeq) == strconv.FormatUint(ps.seq, 10)
		})
		if i < 0 {
			t.Errorf("%s (stream sequence %d) is not in the dead-letter stream", ps.name, ps.seq)
			continue
		}
		m := dls[i]
		reason := m.Header.Get(topology.HeaderDLQReason)
		if reason == "" || !strings.Contains(reason, ps.why) {
			t.Errorf("%s: %s = %q, want a reason naming %q", ps.name, topology.HeaderDLQReason, reason, ps.why)
		}
		if got := m.Header.Get(topology.HeaderDLQSubject); got != ps.subject {
			t.Errorf("%s: %s = %q, want %q", ps.name, topology.HeaderDLQSubject, got, ps.subject)
		}
		if string(m.Data) != string(ps.data) {
			t.Errorf("%s: dead letter body %q, want the original %q", ps.name, m.Data, ps.data)
		}
		if got := m.Header.Get(topology.HeaderEvent); got != string(ionix.EventOpened) {
			t.Errorf("%s: original header %s = %q, want it kept", ps.name, topology.HeaderEvent, got)
		}
		t.Logf("%s: dead-lettered from %s seq %s: %s", ps.name, m.Header.Get(topology.HeaderDLQSubject),
			m.Header.Get(topology.HeaderDLQStreamSeq), reason)
	}
	if t.Failed() {
		t.Logf("process output:\n%s", tailLines(p.logs.String(), 60))
	}
}
