package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/backlog"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestReplayCommand: a dry run shows the range and sends nothing; a replay sends
// the range through the pipeline and reports it; bad ranges are usage errors.
func TestReplayCommand(t *testing.T) {
	sim := emulator.New(emulator.Options{})
	snow := httptest.NewServer(sim)
	t.Cleanup(snow.Close)
	vars := map[string]string{
		"IONIXSNOW_NATS_URL":                 natstest.Start(t).URL(),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL":  snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID":     "ionix",
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "ionix",
		"IONIXSNOW_SERVICENOW_USERNAME":      "ionix",
		"IONIXSNOW_SERVICENOW_PASSWORD":      "ionix",
		"IONIXSNOW_LOG_FORMAT":               "json",
	}
	var in strings.Builder
	urgency := []float64{7, 9.5, 2, 9.1, 5} // Medium, High, Low, High, Low
	for i, u := range urgency {
		fmt.Fprintf(&in, `{"id":"rc-%d","title":{"label":"Finding %d"},"type":"DNS","urgency":{"urgency":%g}}`+"\n", i, i, u)
	}
	if code, out, errs := runInProcess(t, vars, in.String(), "publish"); code != exitOK {
		t.Fatalf("publish: %d %s %s", code, out, errs)
	}

	code, out, errs := runInProcess(t, vars, "", "replay", "--since", "1h", "--dry-run")
	if code != exitOK || !strings.Contains(out, "sequences 1-5") || !strings.Contains(out, "5 messages") || !strings.Contains(out, "nothing sent") ||
		!strings.Contains(out, "by urgency: 2 high, 1 medium, 2 low, re-sent in that order") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	if n := sim.ImportCount(); n != 0 {
		t.Fatalf("the dry run sent %d imports", n)
	}

	code, out, errs = runInProcess(t, vars, "", "replay", "--from-seq", "2", "--json")
	var res struct {
		Done, Total uint64
		Finished    bool
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.Done != 4 || res.Total != 4 || !res.Finished {
		t.Fatalf("replay --from-seq 2: exit %d %+v\n%s%s", code, res, out, errs)
	}
	if n := len(sim.Incidents()); n != 4 {
		t.Errorf("%d incidents after replaying sequences 2-5, want 4", n)
	}
	// High items first, then Medium, then Low (SPEC §10).
	var bands []backlog.Band
	for _, q := range sim.Requests() {
		if id, ok := strings.CutPrefix(q.Fields["u_correlation_id"], "ionix:rc-"); ok {
			bands = append(bands, backlog.BandOf(urgency[id[0]-'0']))
		}
	}
	if !slices.IsSorted(bands) || len(bands) != 4 {
		t.Errorf("the replay sent the bands %v want 4 sends, most urgent first", bands)
	}

	for _, args := range [][]string{
		{"replay"},
		{"replay", "--since", "1h", "--from-seq", "3"},
		{"replay", "--since", "yesterday"},
		{"replay", "--since", "1h", "--until", "2h"},
	} {
		if code, _, errs := runInProcess(t, vars, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errs)
		}
	}
	if code, out, _ := runInProcess(t, vars, "", "replay", "--from-seq", "99"); code != exitOK || !strings.Contains(out, "nothing to replay") {
		t.Errorf("an empty range: exit %d, %q", code, out)
	}
}
