package status_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/status"
)

func TestStatusPrint(t *testing.T) {
	now := time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)
	busy := status.Report{
		GeneratedAt: now,
		Stream:      status.StreamStatus{Name: "IONIX_ACTION_ITEMS", Messages: 12345, FirstSeq: 1, LastSeq: 12345},
		Consumer:    status.ConsumerStatus{Name: "servicenow", Exists: true, Pending: 4200, AckPending: 8, Redelivered: 2},
		Budget: status.BudgetStatus{Used: 1000, Limit: 1000, WindowSeconds: 3600, Readable: true,
			NextFreeAt: now.Add(3*time.Minute + 12*time.Second)},
		DeadLetters: 3,
		Drain: status.ETA{Backlog: 4208, LimitedByCap: true, Approximate: true,
			Duration: 4*time.Hour + 12*time.Minute, At: now.Add(4*time.Hour + 12*time.Minute)},
		Problems: []string{},
	}
	tests := []struct {
		name   string
		report func() status.Report
		want   []string
		not    []string
	}{
		{"at the cap", func() status.Report { return busy }, []string{
			"stream        IONIX_ACTION_ITEMS    12,345 messages (seq 1–12,345)",
			"consumer      servicenow            pending 4,200   ack pending 8   redelivered 2",
			"budget        1,000 / 1,000 per 1h  next free slot 14:03:12 UTC (in 3m12s)",
			"dead letters  3                     (ionixsnow dlq list)",
			"drain ETA     about 4h12m at the cap (backlog 4,208, done about 18:12:00 UTC)",
		}, []string{"note:"}},
		{"slots free, nothing to send", func() status.Report {
			r := busy
			r.Consumer.Pending, r.Consumer.AckPending, r.DeadLetters = 0, 0, 0
			r.Budget.Used, r.Budget.Remaining, r.Budget.WindowSeconds, r.Budget.NextFreeAt = 612, 388, 5400, now
			r.Drain = status.ETA{At: now}
			return r
		}, []string{"612 / 1,000 per 1h30m", "388 free now", "dead letters  0\n", "drain ETA     0s, nothing to send"}, []string{"dlq list", "next free"}},
		{"backlog within the free slots", func() status.Report {
			r := busy
			r.Drain = status.ETA{Backlog: 12, FreeNow: 388, At: now}
			return r
		}, []string{"0s, not limited by the cap (backlog 12 fits in the free slots)"}, nil},
		{"exact ETA, another day", func() status.Report {
			r := busy
			r.Drain = status.ETA{Backlog: 50_000, LimitedByCap: true, Duration: 50 * time.Hour, At: now.Add(50 * time.Hour)}
			return r
		}, []string{"2d2h at the cap", "done about 2026-03-04 16:00:00 UTC"}, []string{"about 2d2h"}},
		{"nothing consumed yet", func() status.Report {
			r := busy
			r.Stream = status.StreamStatus{Name: "IONIX_ACTION_ITEMS", Messages: 1, FirstSeq: 1, LastSeq: 1}
			r.Consumer = status.ConsumerStatus{Name: "servicenow"}
			r.Problems = []string{"consumer servicenow does not exist yet"}
			return r
		}, []string{"1 message (seq 1–1)", "not created yet (ionixsnow consume creates it)", "note: consumer servicenow does not exist yet"}, []string{"pending"}},
		{"empty stream, unreadable budget", func() status.Report {
			r := busy
			r.Stream = status.StreamStatus{Name: "IONIX_ACTION_ITEMS"}
			r.Budget.Readable = false
			r.Problems = []string{"budget: key window revision 3: corrupt (delete the key to reset the budget)"}
			return r
		}, []string{"0 messages\n", "ledger unreadable (see below)", "note: budget: key window"}, []string{"seq"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			status.Print(&b, tt.report())
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tt.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("output has %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestStatusDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{45*time.Second + 400*time.Millisecond, "45s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour, "1h00m"},
		{4*time.Hour + 12*time.Minute + 29*time.Second, "4h12m"},
		{47*time.Hour + 59*time.Minute, "47h59m"},
		{75 * time.Hour, "3d3h"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := status.Duration(tt.d); got != tt.want {
				t.Errorf("Duration(%s) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}
