package budget

import (
	"context"
	"testing"
	"time"
)

// Two replicas with windows 1h and 59m59s (e.g. during a rolling change of
// cap.window) would have slices of 3600ms and 3599ms; every read converting the
// other's slices to the end of the slice in its own grid, grants drifted later by
// about a slice per round trip and held their slots far longer than window+margin
// (a load of 900 sends an hour, cap 1,000, got only about 75 % through). Slices
// are powers of two of ms, so grids nest and a load that gets through alone gets
// through with the mixed windows too.
func TestReplicasWithOtherWindowsDoNotDrift(t *testing.T) {
	ctx := context.Background()
	kv := newMemKV()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	a, _ := NewKV(kv, 1000, time.Hour, WithClock(now))
	b, _ := NewKV(kv, 1000, time.Hour-time.Second, WithClock(now))
	same, _ := NewKV(newMemKV(), 1000, time.Hour, WithClock(now))
	start := clock
	var got, gotSame []time.Time
	for i := 0; clock.Sub(start) < 8*time.Hour; i++ {
		r := a
		if i%2 == 1 {
			r = b
		}
		for _, x := range []struct {
			b *KV
			g *[]time.Time
		}{{r, &got}, {same, &gotSame}} {
			st, err := x.b.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Remaining() > 0 {
				n, err := x.b.Acquire(ctx, 1)
				if err != nil || n != 1 {
					t.Fatal(n, err)
				}
				*x.g = append(*x.g, clock)
			}
		}
		clock = clock.Add(4 * time.Second)
	}
	inLast := func(s []time.Time, h int) int {
		c := 0
		for _, x := range s {
			if clock.Sub(x) <= time.Duration(h)*time.Hour && clock.Sub(x) > time.Duration(h-1)*time.Hour {
				c++
			}
		}
		return c
	}
	for h := 8; h >= 1; h-- {
		t.Logf("hour %d: mixed windows %d sends, one window %d sends", 9-h, inLast(got, h), inLast(gotSame, h))
	}
	if len(got)*100 < 95*len(gotSame) {
		t.Errorf("mixed windows: %d sends in 8h, one window: %d", len(got), len(gotSame))
	}
}
