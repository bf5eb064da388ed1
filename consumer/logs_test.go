package consumer_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestPerItemLogLinesCarryTheItem: an operator searching the logs by action item
// finds every line about it, with its stream sequence and, once known, its incident.
func TestPerItemLogLinesCarryTheItem(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{UrgencyThreshold: 5}, emulator.Options{})
	var logs testkit.Buffer
	d := r.deps(r.topo.Consumer)
	d.Log = zerolog.New(&logs).Level(zerolog.DebugLevel)
	r.publish(t, item("log-1", "Open port 445", "Vulnerability", 9, "2026-10-01T08:00:00Z"),
		item("log-2", "Low finding", "DNS", 2, "2026-10-01T08:00:00Z"))
	c := r.run(t, d, consumer.Options{Filter: mapping.Filter{UrgencyThreshold: 5}, Mapping: mapping.DefaultOptions(), FetchWait: 300 * time.Millisecond})
	r.waitDrained(t)
	if s := c.Stats(); s.Created != 1 || s.FilteredUrgency != 1 {
		t.Fatalf("stats %+v", s)
	}
	perItem := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if _, ok := line["stream_seq"]; !ok {
			continue // not about one item
		}
		perItem++
		if id, _ := line["action_item"].(string); !strings.HasPrefix(id, "log-") {
			t.Errorf("per-item line without its action item: %s", sc.Text())
		}
		if line["message"] == "sent to ServiceNow" && line["incident"] == nil {
			t.Errorf("line after the post without the incident number: %s", sc.Text())
		}
	}
	if perItem < 2 {
		t.Errorf("%d per-item lines, want one per item at least:\n%s", perItem, logs.String())
	}
}
