package budget

import (
	"math/rand/v2"
	"testing"
)

func TestPacingAllowsABurstThenOneAnInterval(t *testing.T) {
	p := pacing{interval: 100, burst: 5}
	const q = 10
	var l ledger
	now := int64(1_000_000)
	n, _ := p.allowed(l, q, now)
	if n != 5 {
		t.Fatalf("idle budget: %d allowed, want the burst of 5", n)
	}
	l = l.add(now/q, 5)
	if n, next := p.allowed(l, q, now); n != 0 || next != now+100 {
		t.Errorf("after the burst: %d allowed, next at +%d; want 0, +100", n, next-now)
	}
	if n, _ := p.allowed(l, q, now+100); n != 1 {
		t.Errorf("one interval later: %d allowed, want 1", n)
	}
	if n, _ := p.allowed(l, q, now+250); n != 2 {
		t.Errorf("2.5 intervals later: %d allowed, want 2", n)
	}
	if n, _ := p.allowed(l, q, now+10_000); n != 5 {
		t.Errorf("long idle: %d allowed, want the burst of 5 again", n)
	}
}

func TestNoPacingAllowsAnything(t *testing.T) {
	for _, p := range []pacing{{}, {interval: 100}, {burst: 3}} {
		if n, next := p.allowed(ledger{{k: 1, n: 1000}}, 10, 20); n < 1<<40 || next != 20 {
			t.Errorf("%+v: %d allowed, next %d", p, n, next)
		}
	}
}

// TestPacedSendsFollowTheRate: whatever the pattern of asks, paced grants never run
// ahead of burst + elapsed/interval (the token bucket's bound, up to a slice of
// early sends that counting per slice allows), and a steady asker gets the rate.
func TestPacedSendsFollowTheRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		interval float64
		burst    int64
		q        int64
	}{{100, 1, 10}, {100, 5, 10}, {3600, 50, 2048}, {36, 20, 2}, {0.5, 10, 1}} {
		p := pacing{interval: tc.interval, burst: tc.burst}
		var l ledger
		start := int64(5_000_000)
		now, sent := start, int64(0)
		for range 2000 {
			// Asks at random moments; refused, it waits until it may (as AcquireGrant).
			now += int64(rng.IntN(int(max(tc.interval, 4))))
			n, next := p.allowed(l, tc.q, now)
			if n == 0 {
				now = next
				n, _ = p.allowed(l, tc.q, now)
			}
			want := int64(1 + rng.IntN(8))
			g := min(n, want)
			if g > 0 {
				k := now / tc.q
				if len(l) > 0 && l[len(l)-1].k > k {
					k = l[len(l)-1].k
				}
				l = l.add(k, g)
				sent += g
			}
			bound := tc.burst + int64(float64(now-start+tc.q)/tc.interval) + 1
			if sent > bound {
				t.Fatalf("%+v: %d sent by +%d ms, bound %d", tc, sent, now-start, bound)
			}
		}
		// An asker that waits when refused gets at least the rate, less a burst.
		if min := int64(float64(now-start)/tc.interval) - tc.burst - 2; sent < min && tc.interval >= 4 {
			t.Errorf("%+v: %d sent in %d ms, want at least %d", tc, sent, now-start, min)
		}
	}
}
