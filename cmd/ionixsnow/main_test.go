package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// binary is the ionixsnow binary built once for the tests that run real processes.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ionixsnow-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ionixsnow")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// runInProcess runs the command line in this process.
func runInProcess(t *testing.T, vars map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb testkit.Buffer // commands log from several goroutines
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, lookupEnv: func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}}
	for k, v := range vars {
		e.environ = append(e.environ, k+"="+v)
	}
	code = e.dispatch(args)
	return code, out.String(), errb.String()
}

func TestDemoJSONSummary(t *testing.T) {
	code, stdout, stderr := runInProcess(t, nil, "", "demo", "--count", "30", "--json")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var sum demoSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("output is not the JSON summary: %v\n%s", err, stdout)
	}
	wantSent, wantFiltered := int64(0), int64(0)
	for _, it := range ionix.SampleItems(30, 1) {
		if it.Urgency >= 4 {
			wantSent++
		} else {
			wantFiltered++
		}
	}
	want := demoSummary{Published: 32, Filtered: wantFiltered, Created: wantSent, Updated: 1, DeadLettered: 1}
	cf := sum.CriticalFirst
	sum.CriticalFirst = criticalFirst{}
	if sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
	// The second act: of 10 low-urgency items the cap lets 3 through; the critical
	// item goes at once, ahead of the other 7.
	if cf.Backlog != 10 || cf.Waiting != 7 || !strings.HasPrefix(cf.Incident, "INC") || cf.WaitMs > 3000 {
		t.Errorf("critical_first = %+v, want 10 published, 7 waiting, the critical item's incident within 3 s", cf)
	}
}

func TestDemoTableShowsIncidents(t *testing.T) {
	code, stdout, stderr := runInProcess(t, nil, "", "demo", "--count", "8")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"INC0010001", "1 - Critical", "CVE-2024-3400", "[updated]", "dead letter", "urgency 42 outside 0-10",
		"critical first: 10 more low-urgency items published", "holds 7 back", "ahead of the 7 waiting"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"unknown command", nil, []string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{"bad flag", nil, []string{"demo", "--count", "x"}, []string{"invalid value"}},
		{"every config problem at once", map[string]string{
			"IONIXSNOW_SERVICENOW_INSTANCE_URL":  "http://snow.example.com",
			"IONIXSNOW_CAP_WINDOW":               "soon",
			"IONIXSNOW_FILTER_URGENCY_THRESHOLD": "11",
			"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "hunter2-very-secret",
		}, []string{"consume"}, []string{"servicenow.instance_url", "cap.window", "filter.urgency_threshold", "servicenow.client_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runInProcess(t, tt.env, "", tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("a secret reached the output:\n%s", stderr)
			}
		})
	}
}

// TestPublishThenConsumeWithExternalServers runs the real binary against a NATS
// server and a ServiceNow URL it is configured for, as an operator would.
func TestPublishThenConsumeWithExternalServers(t *testing.T) {
	ns, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	const secret, password = "client-secret-7f3a9", "user-password-c41d"
	sim := emulator.New(emulator.Options{ClientID: "ionix-it", ClientSecret: secret, Username: "svc.ionix", Password: password})
	snow := httptest.NewServer(sim)
	t.Cleanup(snow.Close)

	dir := t.TempDir()
	var items bytes.Buffer
	sample := ionix.SampleItems(12, 7)
	for _, it := range sample {
		b, _ := json.Marshal(it)
		items.Write(b)
		items.WriteByte('\n')
	}
	items.WriteString(`{"id":"broken-1","title":"no type here","urgency":5}` + "\n")
	file := filepath.Join(dir, "items.ndjson")
	if err := os.WriteFile(file, items.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"IONIXSNOW_NATS_URL=" + ns.URL(),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL=" + snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID=ionix-it",
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET=" + secret,
		"IONIXSNOW_SERVICENOW_USERNAME=svc.ionix",
		"IONIXSNOW_SERVICENOW_PASSWORD=" + password,
		"IONIXSNOW_LOG_FORMAT=json",
		"IONIXSNOW_HTTP_LISTEN=127.0.0.1:0",
	}

	out, code := runBinary(t, env, "publish", "--file", file)
	if code != exitFailed || !strings.Contains(out, "published 12, duplicate 0, invalid 1") || !strings.Contains(out, "line 13") {
		t.Fatalf("first publish: exit %d, output:\n%s", code, out)
	}
	out, code = runBinary(t, env, "publish", "--file", file)
	if code != exitFailed || !strings.Contains(out, "published 0, duplicate 12, invalid 1") {
		t.Fatalf("second publish of the same file: exit %d, output:\n%s", code, out)
	}

	consume := startConsume(t, "", env)
	want := 0 // the default urgency threshold is 1
	for _, it := range sample {
		if it.Urgency >= 1 {
			want++
		}
	}
	if want == len(sample) {
		t.Fatal("the sample has no item below the default threshold; the filter goes untested")
	}
	waitIncidents(t, sim, want, consume)
	consume.stop(t)
	if got := len(sim.Incidents()); got != want {
		t.Errorf("%d incidents, want %d", got, want)
	}
	for _, in := range sim.Incidents() {
		if in.Inserts != 1 || in.Updates != 0 {
			t.Errorf("%s: %d inserts, %d updates; want exactly one insert", in.Number, in.Inserts, in.Updates)
		}
	}
	// Every send was counted in the global budget the replicas share.
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), "ionix_budget")
	if err != nil {
		t.Fatal(err)
	}
	budget, err := budget.NewKV(kv, 1000, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := budget.State(context.Background()); err != nil || st.Used != want {
		t.Errorf("budget used = %d (%v), want %d: consume does not spend the shared budget\n%s", st.Used, err, want, consume.logs.String())
	}
	for _, s := range []string{secret, password} {
		if strings.Contains(consume.logs.String(), s) {
			t.Errorf("secret %q appears in the consume output", s)
		}
	}
}

func runBinary(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), 0
}

// proc is a running ionixsnow process.
type proc struct {
	cmd    *exec.Cmd
	logs   *testkit.Buffer
	exited chan error
}

func startConsume(t *testing.T, dir string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(binary, "consume")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, logs: &testkit.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("consume after SIGTERM: %v\n%s", err, p.logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("consume did not exit within 20s of SIGTERM:\n%s", p.logs.String())
	}
}

func waitIncidents(t *testing.T, sim *emulator.Server, want int, p *proc) {
	t.Helper()
	testkit.WaitForDiag(t, 30*time.Second, fmt.Sprintf("%d incidents", want),
		func() bool { return len(sim.Incidents()) >= want },
		func() string {
			return fmt.Sprintf("%d incidents; consume output:\n%s", len(sim.Incidents()), p.logs.String())
		})
}

// TestConsumeRunsEmbeddedNATSByDefault: with no nats.url, consume runs its own
// JetStream server over ./data/nats; publish finds it on embedded_listen; a restart
// keeps the stream and the consumer's position.
func TestConsumeRunsEmbeddedNATSByDefault(t *testing.T) {
	sim := emulator.New(emulator.Options{})
	snow := httptest.NewServer(sim)
	t.Cleanup(snow.Close)
	dir := t.TempDir()
	env := []string{
		"IONIXSNOW_NATS_EMBEDDED_LISTEN=" + freeAddr(t),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL=" + snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID=ionix", "IONIXSNOW_SERVICENOW_CLIENT_SECRET=ionix",
		"IONIXSNOW_SERVICENOW_USERNAME=ionix", "IONIXSNOW_SERVICENOW_PASSWORD=ionix",
		"IONIXSNOW_LOG_FORMAT=json", "IONIXSNOW_HTTP_LISTEN=127.0.0.1:0",
	}
	items := func(ids ...string) string {
		var b strings.Builder
		for _, id := range ids {
			fmt.Fprintf(&b, `{"id":%q,"title":{"label":"Open port on %s.example.com"},"type":"Network","urgency":{"urgency":7.5}}`+"\n", id, id)
		}
		return b.String()
	}
	publish := func(input string) {
		t.Helper()
		cmd := exec.Command(binary, "publish")
		cmd.Dir, cmd.Env, cmd.Stdin = dir, append(os.Environ(), env...), strings.NewReader(input)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("publish: %v\n%s", err, out)
		}
	}

	consume := startConsume(t, dir, env)
	testkit.WaitFor(t, 20*time.Second, "consume to start its embedded server", func() bool {
		return strings.Contains(consume.logs.String(), `"message":"consuming"`)
	})
	publish(items("a", "b", "c"))
	waitIncidents(t, sim, 3, consume)
	consume.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "data", "nats", "jetstream")); err != nil {
		t.Errorf("no JetStream store under ./data/nats: %v", err)
	}

	consume = startConsume(t, dir, env)
	testkit.WaitFor(t, 20*time.Second, "consume to restart", func() bool {
		return strings.Contains(consume.logs.String(), `"message":"consuming"`)
	})
	publish(items("d"))
	waitIncidents(t, sim, 4, consume)
	consume.stop(t)
	if n := sim.ImportCount(); n != 4 {
		t.Errorf("ServiceNow saw %d imports over the restart, want 4 (nothing re-sent)", n)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestMisspeltVariableRefusedByEveryCommand: an IONIXSNOW_* variable that names no
// key stops every command that loads the configuration, as a misspelt YAML key
// does (exit 2, the variable named with a suggestion, listed with the other
// problems, its value never shown).
func TestMisspeltVariableRefusedByEveryCommand(t *testing.T) {
	const value = "DNS-misspelt-7d1c"
	vars := map[string]string{
		"IONIXSNOW_FILTER_CATEGORY": value,
		"IONIXSNOW_CAP_WINDOW":      "soon",
		"IONIXSNOW_NATS_URL":        "nats://" + freeAddr(t), // nothing listens: nothing may be reached
	}
	for _, args := range [][]string{
		{"consume"}, {"publish", "--dry-run"}, {"poll", "--once"}, {"replay", "--since", "1h"}, {"dlq", "list"},
		{"status"}, {"doctor"}, {"servicenow-sim", "--listen", "127.0.0.1:0"}, {"tenant", "list"}, {"keys", "rotate"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, vars, "", args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitUsage, stdout, stderr)
			}
			wants := []string{"IONIXSNOW_FILTER_CATEGORY: unknown environment variable", "did you mean IONIXSNOW_FILTER_CATEGORIES?", "cap.window"}
			if args[0] == "tenant" || args[0] == "keys" {
				// The tenant keys (cap among them) are the tenants' business, not the
				// deployment's: only the misspelt variable stops these.
				wants = wants[:2]
			}
			for _, want := range wants {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stdout+stderr, value) {
				t.Errorf("the value is shown:\n%s%s", stdout, stderr)
			}
		})
	}
	t.Run("the binary reads its own environment", func(t *testing.T) {
		out, code := runBinary(t, []string{"IONIXSNOW_FILTER_CATEGORY=" + value}, "publish", "--dry-run")
		if code != exitUsage || !strings.Contains(out, "did you mean IONIXSNOW_FILTER_CATEGORIES?") || strings.Contains(out, value) {
			t.Errorf("exit %d, want %d naming the variable without its value:\n%s", code, exitUsage, out)
		}
	})
}

// TestSecretFileWarningLoggedOnce: a secret file any user may read is reported
// once, as a warning naming the key and the file, and the command runs.
func TestSecretFileWarningLoggedOnce(t *testing.T) {
	const secret = "warned-secret-3f9b"
	p := filepath.Join(t.TempDir(), "ionix_token")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	item := `{"id":"w-1","title":"t","type":"DNS","urgency":5}` + "\n"
	code, stdout, stderr := runInProcess(t, map[string]string{"IONIXSNOW_IONIX_TOKEN_FILE": p, "IONIXSNOW_LOG_FORMAT": "json"},
		item, "publish", "--dry-run")
	if code != exitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := strings.Count(stderr, p); n != 1 || !strings.Contains(stderr, `"level":"warn"`) || !strings.Contains(stderr, `"key":"ionix.token_file"`) {
		t.Errorf("want one warning naming ionix.token_file and %s, got %d mentions:\n%s", p, n, stderr)
	}
	if strings.Contains(stdout+stderr, secret) {
		t.Errorf("the secret is shown:\n%s%s", stdout, stderr)
	}
}

// TestEmbeddedServerBeyondLoopback: an embedded server listening beyond loopback
// needs nats.embedded_token (else exit 2 naming nats.embedded_listen), demands it
// of every client, and ionixsnow presents it.
func TestEmbeddedServerBeyondLoopback(t *testing.T) {
	const token = "embedded-token-for-the-test-8a2f"
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	listen := "0.0.0.0:" + port
	srv, err := embedded.Start(embedded.Options{Listen: listen, Token: token, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	tests := []struct {
		name   string
		vars   map[string]string
		code   int
		stdout string
	}{
		{"no token", map[string]string{"IONIXSNOW_NATS_EMBEDDED_LISTEN": listen}, exitUsage, "nats.embedded_listen"},
		{"a wrong token", map[string]string{"IONIXSNOW_NATS_EMBEDDED_LISTEN": listen, "IONIXSNOW_NATS_EMBEDDED_TOKEN": "wrong-" + token},
			exitFailed, "nats.embedded_token is not the one"},
		{"the token", map[string]string{"IONIXSNOW_NATS_EMBEDDED_LISTEN": listen, "IONIXSNOW_NATS_EMBEDDED_TOKEN": token},
			exitFailed, "stream IONIX_ACTION_ITEMS does not exist yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tt.vars, "", "status", "--json")
			if code != tt.code || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("exit %d, want %d with %q; stdout:\n%s\nstderr:\n%s", code, tt.code, tt.stdout, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, token) {
				t.Errorf("the token is shown:\n%s%s", stdout, stderr)
			}
		})
	}
}
