package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/embedded/natstest"
)

func TestBenchJSON(t *testing.T) {
	code, stdout, stderr := runInProcess(t, nil, "", "bench", "--items", "300", "--json")
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var got struct {
		Items          *int     `json:"items"`
		ThroughputPerS *float64 `json:"throughput_per_s"`
		P50MS          *float64 `json:"p50_ms"`
		P99MS          *float64 `json:"p99_ms"`
		MaxRSSMB       *float64 `json:"max_rss_mb"`
		Concurrency    int      `json:"concurrency"`
		Mode           string   `json:"mode"`
		Budget         string   `json:"budget"`
		BudgetUsed     int      `json:"budget_used"`
		NATS           string   `json:"nats"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	if got.Items == nil || got.ThroughputPerS == nil || got.P50MS == nil || got.P99MS == nil || got.MaxRSSMB == nil {
		t.Fatalf("a required field is missing:\n%s", stdout)
	}
	if *got.Items != 300 {
		t.Errorf("items %d, want 300", *got.Items)
	}
	if *got.ThroughputPerS <= 0 {
		t.Errorf("throughput %g", *got.ThroughputPerS)
	}
	if *got.P50MS <= 0 || *got.P50MS > *got.P99MS {
		t.Errorf("p50 %g, p99 %g", *got.P50MS, *got.P99MS)
	}
	if *got.MaxRSSMB <= 0 {
		t.Errorf("max RSS %g", *got.MaxRSSMB)
	}
	if got.Mode != "backlog" || got.Concurrency != 16 {
		t.Errorf("mode %q, concurrency %d; want backlog, 16 (the defaults)", got.Mode, got.Concurrency)
	}
	// By default, what deploys: every send granted through the KV budget.
	if got.Budget != "kv" || got.BudgetUsed < 300 || got.NATS != "in-process" {
		t.Errorf("budget %q with %d grants, NATS %q; want kv with 300 or more, in-process (the defaults)", got.Budget, got.BudgetUsed, got.NATS)
	}
}

// The output says which configuration ran.
func TestBenchConfigurations(t *testing.T) {
	external := natstest.Start(t).URL()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"default", nil, []string{"KV budget on (cap 100000000 per 1h, never binding), NATS in-process", "30 grants in the ledger", "NATS server and emulator included"}},
		{"cap off", []string{"--cap-off"}, []string{"budget off (--cap-off), NATS in-process"}},
		{"external server", []string{"--nats-url", external}, []string{"KV budget on", "NATS external", "the NATS server not included"}},
		{"external server, cap off", []string{"--nats-url", external, "--cap-off"}, []string{"budget off (--cap-off), NATS external"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"bench", "--items", "30", "--concurrency", "4"}, tc.args...)
			code, stdout, stderr := runInProcess(t, nil, "", args...)
			if code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			for _, want := range append(tc.want, "30 created") {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

func TestBenchNoExternalServer(t *testing.T) {
	addr := natstest.FreeAddrs(t, 1)[0] // nothing listens there
	code, stdout, stderr := runInProcess(t, nil, "", "bench", "--items", "10", "--nats-url", "nats://"+addr)
	if code != exitFailed || stdout != "" {
		t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, exitFailed)
	}
	if !strings.Contains(stderr, "external nats-server") {
		t.Errorf("stderr does not name the external nats-server:\n%s", stderr)
	}
}

func TestBenchText(t *testing.T) {
	code, stdout, stderr := runInProcess(t, nil, "", "bench", "--items", "40", "--rate", "400", "--concurrency", "4")
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"40 items, rate (400 items/s), concurrency 4", "end to end", "p99", "peak RSS", "40 created"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestBenchBrokerOnly(t *testing.T) {
	code, stdout, stderr := runInProcess(t, nil, "", "bench", "--broker-only", "--items", "200", "--json")
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var got struct {
		Mode           string  `json:"mode"`
		Items          int     `json:"items"`
		Batch          int     `json:"batch"`
		ThroughputPerS float64 `json:"throughput_per_s"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	if got.Mode != "broker" || got.Items != 200 || got.Batch != 16 || got.ThroughputPerS <= 0 {
		t.Errorf("result %+v", got)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"zero items", []string{"--items", "0"}, "items"},
		{"too many items", []string{"--items", "2000000"}, "items"},
		{"not a number", []string{"--items", "many"}, "invalid value"},
		{"zero concurrency", []string{"--concurrency", "0"}, "concurrency"},
		{"negative latency", []string{"--latency", "-5ms"}, "latency"},
		{"latency without unit", []string{"--latency", "50"}, "invalid value"},
		{"negative rate", []string{"--rate", "-1"}, "rate"},
		{"unknown flag", []string{"--fast"}, "not defined"},
		{"stray argument", []string{"now"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, nil, "", append([]string{"bench"}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
		})
	}
}
