package main

import (
	"encoding/json"
	"strings"
	"testing"
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
