package status_test

import (
	"testing"
	"time"

	"github.com/ionix/ionixsnow/status"
)

var t0 = time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)

// spread is n slots freeing evenly over the next hold: the k-th (1-based) at
// now + k·hold/n, as a steady flow at the cap leaves them.
func spread(now time.Time, hold time.Duration, n int) []time.Time {
	out := make([]time.Time, n)
	for k := 1; k <= n; k++ {
		out[k-1] = now.Add(time.Duration(int64(hold) * int64(k) / int64(n)))
	}
	return out
}

func TestStatusDrainETA(t *testing.T) {
	const h = time.Hour
	burst := make([]time.Time, 1000) // the whole cap spent 10 minutes ago
	for i := range burst {
		burst[i] = t0.Add(50 * time.Minute)
	}
	tests := []struct {
		name        string
		backlog     uint64
		ledger      status.Ledger
		want        time.Duration
		limited     bool
		approximate bool
		freeNow     int
	}{
		{"paced: the burst at once, then one every interval", 300,
			status.Ledger{Used: 0, Limit: 1000, Hold: h, Interval: 3600 * time.Millisecond, PacedNow: 50}, 250 * 3600 * time.Millisecond, true, false, 1000},
		{"paced: within what pacing lets go now", 40,
			status.Ledger{Used: 0, Limit: 1000, Hold: h, Interval: 3600 * time.Millisecond, PacedNow: 50}, 0, false, false, 1000},
		{"paced, cap full: the window's ETA when it is the longer", 1000,
			status.Ledger{Used: 1000, Limit: 1000, Hold: h, NextFreeAt: t0.Add(50 * time.Minute), FreesAt: burst, Interval: time.Millisecond, PacedNow: 1}, 50 * time.Minute, true, false, 0},
		{"empty backlog", 0, status.Ledger{Used: 1000, Limit: 1000, Hold: h, NextFreeAt: t0.Add(time.Minute)}, 0, false, false, 0},
		{"backlog below what is free", 300, status.Ledger{Used: 612, Limit: 1000, Hold: h}, 0, false, false, 388},
		{"backlog exactly what is free", 388, status.Ledger{Used: 612, Limit: 1000, Hold: h}, 0, false, false, 388},
		{"no cap", 1_000_000, status.Ledger{Used: 5, Limit: 0, Hold: h}, 0, false, false, 0},
		{"5,000 at 1,000/h, nothing used: the first 1,000 now, then a window per 1,000", 5000,
			status.Ledger{Used: 0, Limit: 1000, Hold: h}, 4 * h, true, false, 1000},
		{"the window's margin lengthens every round", 5000,
			status.Ledger{Used: 0, Limit: 1000, Hold: h + 36*time.Second}, 4 * (h + 36*time.Second), true, false, 1000},
		{"5,000 at 1,000/h, 612 used in a steady flow: 388 now, the 612 as they free, then 4 windows", 5000,
			status.Ledger{Used: 612, Limit: 1000, Hold: h}, 5 * h, true, true, 388},
		{"one over what is free waits for the oldest used slot (estimated)", 389,
			status.Ledger{Used: 612, Limit: 1000, Hold: h}, h / 612, true, true, 388},
		{"one over what is free waits for the oldest used slot (known)", 389,
			status.Ledger{Used: 612, Limit: 1000, Hold: h, FreesAt: spread(t0, h, 612)}, h / 612, true, false, 388},
		{"cap full: the first send at next_free_at, exactly", 1,
			status.Ledger{Used: 1000, Limit: 1000, Hold: h, NextFreeAt: t0.Add(3*time.Minute + 12*time.Second)}, 3*time.Minute + 12*time.Second, true, false, 0},
		{"cap full: between next_free_at and now + hold, evenly", 501,
			status.Ledger{Used: 1000, Limit: 1000, Hold: h, NextFreeAt: t0.Add(10 * time.Minute)}, 10*time.Minute + 50*time.Minute*500/999, true, true, 0},
		{"cap full in a burst: the ledger's stamps say all free at once", 1000,
			status.Ledger{Used: 1000, Limit: 1000, Hold: h, NextFreeAt: t0.Add(50 * time.Minute), FreesAt: burst}, 50 * time.Minute, true, false, 0},
		{"cap full in a burst, estimated: at most one hold late", 1000,
			status.Ledger{Used: 1000, Limit: 1000, Hold: h, NextFreeAt: t0.Add(50 * time.Minute)}, h, true, true, 0},
		{"cap full, 2,500 with known slots: the 500th slot, then two windows", 2500,
			status.Ledger{Used: 1000, Limit: 1000, Hold: h, NextFreeAt: t0.Add(h / 1000), FreesAt: spread(t0, h, 1000)}, h/2 + 2*h, true, false, 0},
		{"cap lowered below what is used: the excess frees first", 1,
			status.Ledger{Used: 1200, Limit: 1000, Hold: h, FreesAt: spread(t0, h, 1200)}, h * 201 / 1200, true, false, 0},
		{"cap lowered, estimated: next_free_at is the first slot under the cap", 1,
			status.Ledger{Used: 1200, Limit: 1000, Hold: h, NextFreeAt: t0.Add(10 * time.Minute)}, 10 * time.Minute, true, false, 0},
		{"FreesAt not matching Used is ignored", 389,
			status.Ledger{Used: 612, Limit: 1000, Hold: h, FreesAt: spread(t0, h, 3)}, h / 612, true, true, 388},
		{"next_free_at beyond now + hold (a clock ahead) bounds the estimate", 3,
			status.Ledger{Used: 3, Limit: 3, Hold: h, NextFreeAt: t0.Add(h + time.Minute)}, h + time.Minute, true, true, 0},
		{"a huge backlog does not overflow", 1 << 62,
			status.Ledger{Used: 0, Limit: 1, Hold: h}, time.Duration(1<<63 - 1), true, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := status.DrainETA(tt.backlog, tt.ledger, t0)
			if d := got.Duration - tt.want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("duration = %s, want %s", got.Duration, tt.want)
			}
			if got.LimitedByCap != tt.limited || got.Approximate != tt.approximate || got.FreeNow != tt.freeNow || got.Backlog != tt.backlog {
				t.Errorf("got %+v, want limited %v, approximate %v, free now %d", got, tt.limited, tt.approximate, tt.freeNow)
			}
			if !got.At.Equal(t0.Add(got.Duration)) {
				t.Errorf("at = %s, want now + %s", got.At, got.Duration)
			}
		})
	}
}

// TestDrainETAEstimateMatchesASteadyFlow: for slots left by a steady flow at the cap,
// the estimate from used and next_free_at alone equals the ETA from the stamps.
func TestStatusDrainETAEstimateMatchesASteadyFlow(t *testing.T) {
	const hold = time.Hour
	for _, used := range []int{1, 7, 612, 999, 1000} {
		frees := spread(t0, hold, used)
		l := status.Ledger{Used: used, Limit: 1000, Hold: hold, FreesAt: frees}
		if used == 1000 {
			l.NextFreeAt = frees[0]
		}
		est := l
		est.FreesAt = nil
		for _, backlog := range []uint64{1, 500, 1000, 1001, 2345, 10_000} {
			exact, approx := status.DrainETA(backlog, l, t0), status.DrainETA(backlog, est, t0)
			if d := exact.Duration - approx.Duration; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("used %d, backlog %d: estimate %s, from the stamps %s", used, backlog, approx.Duration, exact.Duration)
			}
		}
	}
}

func TestStatusETASecondsRounds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{0, 0},
		{400 * time.Millisecond, 0},
		{2*time.Hour + 72*time.Second + time.Millisecond, 7272},
		{1500 * time.Millisecond, 2},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := (status.ETA{Duration: tt.d}).Seconds(); got != tt.want {
				t.Errorf("Seconds() = %d, want %d", got, tt.want)
			}
		})
	}
}
