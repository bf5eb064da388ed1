package main

// Fault tests that run the real `ionixsnow consume` binary as separate processes
// against a NATS server in this process and the ServiceNow emulator: consumers
// killed with SIGKILL while items flow, a ServiceNow outage seen by two processes,
// and poison messages. Every wait is on a condition with a deadline; the random
// kill timing comes from a seeded generator (fault injection, not synchronisation).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	// tenantSims are the instances of the tenants withTenants added.
	tenantSims map[string]*emulator.Server
}

// withTenants adds tenants of the integrations bucket to the rig, each on an emulator
// of its own with simOpts' latency and faults, put and activated with the binary as
// an operator would. It returns the environment of consume processes that serve them
// besides the single-tenant form.
func (r *faultRig) withTenants(t *testing.T, simOpts emulator.Options, ids ...string) []string {
	t.Helper()
	dir := t.TempDir()
	keyset := filepath.Join(dir, "keyset.json")
	base := []string{"IONIXSNOW_NATS_URL=nats://" + r.listen, "IONIXSNOW_SECRETS_KEYSET_FILE=" + keyset}
	mustRunBinary(t, base, "keys", "init", "--out", keyset)
	r.tenantSims = map[string]*emulator.Server{}
	for _, id := range ids {
		o := simOpts
		o.ClientID, o.ClientSecret, o.Username, o.Password = id+"-client", "cs-"+id, "svc."+id, "pw-"+id
		sim := emulator.New(o)
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		r.tenantSims[id] = sim
		file := filepath.Join(dir, id+".yaml")
		// A cap out of the way, as the single-tenant form's (IONIXSNOW_CAP_MAX_PER_WINDOW).
		settings := fmt.Sprintf("servicenow: {instance_url: %q, client_id: %q, username: %q}\ncap: {max_per_window: 1000000}\n", srv.URL, id+"-client", "svc."+id)
		if err := os.WriteFile(file, []byte(settings), 0o600); err != nil {
			t.Fatal(err)
		}
		mustRunBinary(t, append(slices.Clone(base), "IONIXSNOW_SERVICENOW_CLIENT_SECRET="+o.ClientSecret, "IONIXSNOW_SERVICENOW_PASSWORD="+o.Password),
			"tenant", "put", id, "--file", file)
		mustRunBinary(t, base, "tenant", "activate", id)
	}
	return append(slices.Clone(r.env), "IONIXSNOW_SECRETS_KEYSET_FILE="+keyset)
}

// mustRunBinary runs the binary and fails the test unless it exits 0.
func mustRunBinary(t *testing.T, env []string, args ...string) {
	t.Helper()
	if out, code := runBinary(t, env, args...); code != exitOK {
		t.Fatalf("ionixsnow %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
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

// Log messages of consumer/breaker.go.
const (
	msgPaused       = "sending paused: ServiceNow is down"
	msgResumed      = "ServiceNow accepts items again; sending resumed"
	msgStillFailing = "ServiceNow still failing; sending stays paused"
)

// consumerIdle reports whether the durable consumer has nothing pending and nothing
// awaiting an ack: every message was settled (acked or terminated).
func (r *faultRig) consumerIdle() bool { return r.consumerIdleOf(topology.DefaultConsumer) }

// consumerIdleOf is consumerIdle for the durable consumer name (a tenant's).
func (r *faultRig) consumerIdleOf(name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := r.js.Consumer(ctx, topology.DefaultStream, name)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func (r *faultRig) consumerState() string { return r.consumerStateOf(topology.DefaultConsumer) }

// consumerStateOf is consumerState for the durable consumer name (a tenant's).
func (r *faultRig) consumerStateOf(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := r.js.Consumer(ctx, topology.DefaultStream, name)
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
