package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/topology"
)

// statusTraffic leaves the topology as a consumer at work would: 10 items
// published, 4 fetched (one acked, one nak'd and fetched again, one dead-lettered
// and terminated, one in flight) and the whole budget of limit spent. It returns
// the budget's state.
func statusTraffic(t *testing.T, js jetstream.JetStream, limit int) budget.State {
	t.Helper()
	ctx := context.Background()
	topo, err := topology.Ensure(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		body := fmt.Sprintf(`{"id":"item-%d","title":{"label":"Open port on host-%d"},"type":"PKI","urgency":{"urgency":7.5}}`, i, i)
		if _, err := js.Publish(ctx, "ionix.action_items.opened.pki", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(n int) []jetstream.Msg {
		t.Helper()
		batch, err := topo.Consumer.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var out []jetstream.Msg
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if len(out) != n {
			t.Fatalf("fetched %d, want %d (%v)", len(out), n, batch.Error())
		}
		return out
	}
	// confirm sends an acknowledgement and waits until the server applied it.
	confirm := func(m jetstream.Msg, ack string) {
		t.Helper()
		if _, err := js.Conn().Request(m.Reply(), []byte(ack), 5*time.Second); err != nil {
			t.Fatalf("%s: %v", ack, err)
		}
	}
	msgs := fetch(4)
	confirm(msgs[1], "-NAK")
	if md, err := fetch(1)[0].Metadata(); err != nil || md.NumDelivered != 2 {
		t.Fatalf("refetched %+v (%v), want a redelivery", md, err)
	}
	md, err := msgs[2].Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.New(js, topo.Names).Put(ctx, msgs[2], md.Sequence.Stream, "urgency 42 outside 0-10"); err != nil {
		t.Fatal(err)
	}
	confirm(msgs[2], "+TERM")
	if err := msgs[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := budget.NewKV(topo.Budget, limit, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := b.Acquire(ctx, limit); err != nil || n != limit {
		t.Fatalf("acquired %d (%v), want %d", n, err, limit)
	}
	st, err := b.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatusJSONAndTable(t *testing.T) {
	srv := natstest.Start(t)
	budget := statusTraffic(t, natstest.Connect(t, srv.URL()), 5)
	const secret = "hunter2-status-secret"
	vars := map[string]string{
		"IONIXSNOW_NATS_URL":                 srv.URL(),
		"IONIXSNOW_CAP_MAX_PER_WINDOW":       "5",
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET": secret,
	}

	code, stdout, stderr := runInProcess(t, vars, "", "status", "--json")
	if code != exitOK {
		t.Fatalf("status --json: exit %d, stderr:\n%s", code, stderr)
	}
	var got struct {
		Stream struct {
			Messages uint64 `json:"messages"`
		} `json:"stream"`
		Consumer struct {
			Pending     uint64 `json:"pending"`
			AckPending  int    `json:"ack_pending"`
			Redelivered int    `json:"redelivered"`
		} `json:"consumer"`
		Budget struct {
			Used          int     `json:"used"`
			Limit         int     `json:"limit"`
			WindowSeconds float64 `json:"window_seconds"`
			NextFreeAt    string  `json:"next_free_at"`
		} `json:"budget"`
		DeadLetters     uint64   `json:"dead_letters"`
		DrainETASeconds int64    `json:"drain_eta_seconds"`
		Problems        []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if got.Stream.Messages != 10 || got.Consumer.Pending != 6 || got.Consumer.AckPending != 2 || got.Consumer.Redelivered != 1 {
		t.Errorf("stream %+v, consumer %+v; want 10 messages, pending 6, ack pending 2, redelivered 1", got.Stream, got.Consumer)
	}
	if got.Budget.Used != 5 || got.Budget.Limit != 5 || got.Budget.WindowSeconds != 3600 || got.DeadLetters != 1 || len(got.Problems) != 0 {
		t.Errorf("budget %+v, dead letters %d, problems %q; want 5 of 5 per 3600s, 1 dead letter, no problem", got.Budget, got.DeadLetters, got.Problems)
	}
	if at, err := time.Parse(time.RFC3339, got.Budget.NextFreeAt); err != nil || !at.Equal(budget.NextFreeAt) {
		t.Errorf("next_free_at = %q (%v), want %s", got.Budget.NextFreeAt, err, budget.NextFreeAt.UTC().Format(time.RFC3339Nano))
	}
	// 8 to send (6 pending, 2 in flight), 5 per window, all 5 spent just now: 5
	// when they free one window and margin on, the last 3 one later; each hold can
	// be up to one slice of the budget ledger (window/1,000: 3.6 s) longer.
	if hold := int64((time.Hour + 36*time.Second) / time.Second); got.DrainETASeconds < 2*hold-2 || got.DrainETASeconds > 2*hold+8 {
		t.Errorf("drain_eta_seconds = %d, want about %d, at most 8 s more", got.DrainETASeconds, 2*hold)
	}

	code, stdout, stderr = runInProcess(t, vars, "", "status")
	if code != exitOK {
		t.Fatalf("status: exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"IONIX_ACTION_ITEMS", "10 messages (seq 1–10)",
		"servicenow", "pending 6   ack pending 2   redelivered 1",
		"5 / 5 per 1h", "next free slot ",
		"dead letters  1", "(ionixsnow dlq list)",
		"2h01m at the cap (backlog 8,",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, secret) {
		t.Errorf("a secret reached the output:\n%s%s", stdout, stderr)
	}
}

func TestStatusExitCodes(t *testing.T) {
	closedAddr := freeAddr(t) // nothing listens there
	tests := []struct {
		name     string
		setup    func(t *testing.T) map[string]string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		notOut   []string
		listened string // must still be free afterwards: no embedded server started
	}{
		{
			name: "nothing exists yet",
			setup: func(t *testing.T) map[string]string {
				return map[string]string{"IONIXSNOW_NATS_URL": natstest.Start(t).URL()}
			},
			code:   exitFailed,
			stderr: []string{"stream IONIX_ACTION_ITEMS does not exist yet", "ionixsnow publish"},
		},
		{
			name: "only the stream, as after a first publish",
			setup: func(t *testing.T) map[string]string {
				srv := natstest.Start(t)
				js := natstest.Connect(t, srv.URL())
				if _, err := topology.EnsureStream(context.Background(), js, topology.Options{}); err != nil {
					t.Fatal(err)
				}
				if _, err := js.Publish(context.Background(), "ionix.action_items.opened.dns", []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
				return map[string]string{"IONIXSNOW_NATS_URL": srv.URL()}
			},
			code:   exitOK,
			stdout: []string{"1 message (seq 1–1)", "not created yet", "0 / 1,000 per 1h", "1,000 free now", "note: consumer servicenow does not exist yet"},
		},
		{
			name: "NATS unreachable",
			setup: func(*testing.T) map[string]string {
				return map[string]string{"IONIXSNOW_NATS_URL": "nats://ionix:nats-pass-8d2e@" + closedAddr}
			},
			code:   exitFailed,
			stderr: []string{"connect to NATS", "[redacted]"},
			notOut: []string{"nats-pass-8d2e"},
		},
		{
			name: "no nats.url and no embedded server running",
			setup: func(*testing.T) map[string]string {
				return map[string]string{"IONIXSNOW_NATS_EMBEDDED_LISTEN": closedAddr}
			},
			code:     exitFailed,
			stderr:   []string{"no embedded server listening on " + closedAddr, "ionixsnow consume"},
			listened: closedAddr,
		},
		{
			name:   "bad configuration",
			setup:  func(*testing.T) map[string]string { return map[string]string{"IONIXSNOW_CAP_WINDOW": "soon"} },
			code:   exitUsage,
			stderr: []string{"cap.window"},
		},
		{
			name:  "bad flag",
			setup: func(*testing.T) map[string]string { return nil },
			args:  []string{"--frobnicate"},
			code:  exitUsage,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tt.setup(t), "", append([]string{"status"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for _, w := range tt.notOut {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output has %q:\n%s%s", w, stdout, stderr)
				}
			}
			if tt.listened != "" {
				if c, err := net.DialTimeout("tcp", tt.listened, time.Second); err == nil {
					c.Close()
					t.Errorf("something listens on %s: status started a server", tt.listened)
				}
			}
		})
	}
}

// TestStatusJSONFailures: with --json every failure is one JSON object on stdout
// ({"error","fix"}, and "problems" with each key for a configuration that does
// not load), with the exit code of the text form.
func TestStatusJSONFailures(t *testing.T) {
	closedAddr := freeAddr(t)
	tests := []struct {
		name     string
		setup    func(t *testing.T) map[string]string
		code     int
		error    string   // in "error"
		fix      string   // in "fix"
		problems []string // keys of "problems"
		notOut   string
	}{
		{
			name: "NATS unreachable",
			setup: func(*testing.T) map[string]string {
				return map[string]string{"IONIXSNOW_NATS_URL": "nats://ionix:nats-pass-8d2e@" + closedAddr}
			},
			code: exitFailed, error: "connect to NATS", fix: "nats.url", notOut: "nats-pass-8d2e",
		},
		{
			name: "no nats.url and no embedded server running",
			setup: func(*testing.T) map[string]string {
				return map[string]string{"IONIXSNOW_NATS_EMBEDDED_LISTEN": closedAddr}
			},
			code: exitFailed, error: "no embedded server listening on " + closedAddr, fix: "ionixsnow consume",
		},
		{
			name: "nothing exists yet",
			setup: func(t *testing.T) map[string]string {
				return map[string]string{"IONIXSNOW_NATS_URL": natstest.Start(t).URL()}
			},
			code: exitFailed, error: "stream IONIX_ACTION_ITEMS does not exist yet", fix: "ionixsnow publish",
		},
		{
			name: "bad configuration",
			setup: func(*testing.T) map[string]string {
				return map[string]string{"IONIXSNOW_CAP_WINDOW": "soon", "IONIXSNOW_FILTER_CATEGORY": "DNS"}
			},
			code: exitUsage, error: "configuration", problems: []string{"cap.window", "IONIXSNOW_FILTER_CATEGORY"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tt.setup(t), "", "status", "--json")
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			var got struct {
				Error    string `json:"error"`
				Fix      string `json:"fix"`
				Problems []struct {
					Key     string `json:"key"`
					Message string `json:"message"`
				} `json:"problems"`
			}
			dec := json.NewDecoder(strings.NewReader(stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil || dec.More() {
				t.Fatalf("stdout is not one JSON failure (%v):\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			if !strings.Contains(got.Error, tt.error) || !strings.Contains(got.Fix, tt.fix) {
				t.Errorf("error %q, fix %q; want them to say %q and %q", got.Error, got.Fix, tt.error, tt.fix)
			}
			var keys []string
			for _, p := range got.Problems {
				keys = append(keys, p.Key)
				if p.Message == "" {
					t.Errorf("problem %s without a message", p.Key)
				}
			}
			if strings.Join(keys, ",") != strings.Join(tt.problems, ",") {
				t.Errorf("problem keys %v, want %v", keys, tt.problems)
			}
			if strings.TrimSpace(stderr) != "" {
				t.Errorf("stderr has text besides the JSON:\n%s", stderr)
			}
			if tt.notOut != "" && strings.Contains(stdout+stderr, tt.notOut) {
				t.Errorf("output has %q:\n%s", tt.notOut, stdout)
			}
		})
	}
}
