package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/embedded"
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
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, lookupEnv: func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}}
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
	if sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
}

func TestDemoTableShowsIncidents(t *testing.T) {
	code, stdout, stderr := runInProcess(t, nil, "", "demo", "--count", "8")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"INC0010001", "1 - Critical", "CVE-2024-3400", "[updated]", "dead letter", "urgency 42 outside 0-10"} {
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

	consume := exec.Command(binary, "consume")
	consume.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	consume.Stdout, consume.Stderr = &logs, &logs
	if err := consume.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- consume.Wait() }()
	t.Cleanup(func() { _ = consume.Process.Kill() })

	want := 0 // the default urgency threshold is 1
	for _, it := range sample {
		if it.Urgency >= 1 {
			want++
		}
	}
	if want == len(sample) {
		t.Fatal("the sample has no item below the default threshold; the filter goes untested")
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(sim.Incidents()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d incidents after 30s; consume output:\n%s", len(sim.Incidents()), want, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := consume.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("consume after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("consume did not exit within 20s of SIGTERM:\n%s", logs.String())
	}
	if got := len(sim.Incidents()); got != want {
		t.Errorf("%d incidents, want %d", got, want)
	}
	for _, in := range sim.Incidents() {
		if in.Inserts != 1 || in.Updates != 0 {
			t.Errorf("%s: %d inserts, %d updates; want exactly one insert", in.Number, in.Inserts, in.Updates)
		}
	}
	for _, s := range []string{secret, password} {
		if strings.Contains(logs.String(), s) {
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
