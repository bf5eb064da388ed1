package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue finds one sample line ("name{labels} value") in a scrape.
func metricValue(body, series string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestMetricsAndReadiness runs consume as an operator would and checks what
// Prometheus and Kubernetes see: the metrics after items flow, and /readyz turning
// 503 while a configuration error pauses sending and 200 again once it is fixed.
func TestMetricsAndReadiness(t *testing.T) {
	sim := emulator.New(emulator.Options{})
	snow := httptest.NewServer(sim)
	t.Cleanup(snow.Close)
	ns := natstest.Start(t)
	listen := freeAddr(t)
	consume := startConsume(t, "", []string{
		"IONIXSNOW_NATS_URL=" + ns.URL(),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL=" + snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID=ionix", "IONIXSNOW_SERVICENOW_CLIENT_SECRET=ionix",
		"IONIXSNOW_SERVICENOW_USERNAME=ionix", "IONIXSNOW_SERVICENOW_PASSWORD=ionix",
		"IONIXSNOW_FILTER_URGENCY_THRESHOLD=5", "IONIXSNOW_CAP_MAX_PER_WINDOW=100",
		// The cap's pace (one send every 36 s after a burst of 5) is not what this tests.
		"IONIXSNOW_CAP_PACING=burst",
		"IONIXSNOW_CONSUMER_MAX_BACKOFF=1s",
		"IONIXSNOW_LOG_FORMAT=json", "IONIXSNOW_HTTP_LISTEN=" + listen,
	})
	base := "http://" + listen
	testkit.WaitFor(t, 20*time.Second, "/readyz to answer 200", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	publish := func(data string) {
		t.Helper()
		if err := nc.Publish("ionix.action_items.opened.dns", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		publish(fmt.Sprintf(`{"id":"m-%d","title":"Dangling record %d","type":"DNS","urgency":8}`, i, i))
	}
	publish(`{"id":"low-1","title":"Minor finding","type":"DNS","urgency":2}`)
	publish(`not json`)
	waitIncidents(t, sim, 4, consume)

	var body string
	// A message is counted received when its handling starts, a dead letter once it
	// is stored: wait for the last counters of all six to be settled.
	testkit.WaitFor(t, 10*time.Second, "the metrics of six messages", func() bool {
		_, body = get(t, base+"/metrics")
		return metricValue(body, "ionixsnow_items_received_total") == "6" &&
			metricValue(body, `ionixsnow_dead_letters_total{reason="invalid"}`) == "1" &&
			metricValue(body, `ionixsnow_items_filtered_total{reason="urgency"}`) == "1" &&
			metricValue(body, `ionixsnow_items_sent_total{status="inserted"}`) == "4"
	})
	for series, want := range map[string]string{
		`ionixsnow_items_sent_total{status="inserted"}`:                                "4",
		`ionixsnow_items_filtered_total{reason="urgency"}`:                             "1",
		`ionixsnow_dead_letters_total{reason="invalid"}`:                               "1",
		`ionixsnow_consumer_paused`:                                                    "0",
		`ionixsnow_servicenow_request_duration_seconds_count{outcome="success"}`:       "4",
		`ionixsnow_servicenow_request_duration_seconds_count{outcome="configuration"}`: "0",
	} {
		if got := metricValue(body, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}

	// 4 sends spent; the replica's pull also holds a grant per message it asks for
	// until they arrive: one once the stream is idle, up to 5 × concurrency (20) in
	// the pull that follows a full one.
	if v, err := strconv.Atoi(metricValue(body, "ionixsnow_budget_remaining")); err != nil || v < 76 || v > 96 {
		t.Errorf("ionixsnow_budget_remaining = %d (%v), want 76-96 of 100", v, err)
	}

	// The admin removes the integration user's role: the next item is refused
	// (403), sending pauses, the pod is not ready.
	cfg := sim.Config()
	roles := cfg.Roles
	cfg.Roles = []string{"itil"} // without import_transformer / ionix_integration
	if err := sim.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	publish(`{"id":"m-late","title":"Expired certificate","type":"DNS","urgency":9}`)
	testkit.WaitFor(t, 20*time.Second, "/readyz to answer 503", func() bool { code, _ := get(t, base+"/readyz"); return code == 503 })
	_, body = get(t, base+"/metrics")
	if metricValue(body, "ionixsnow_consumer_paused") != "1" {
		t.Errorf("ionixsnow_consumer_paused is not 1 while paused:\n%s", grepLines(body, "ionixsnow_consumer"))
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d while paused, want 200 (the process is alive)", code)
	}
	cfg.Roles = roles
	if err := sim.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "/readyz to answer 200 after the fix", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	waitIncidents(t, sim, 5, consume)
	consume.stop(t)
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
