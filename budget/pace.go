package budget

import "math"

// This file is the pure part of even pacing (SPEC §10, cap.pacing: even): on top of
// the sliding window, sends are spread at the cap's rate, one every window/max,
// with a burst allowance for an idle budget. It is the generic cell rate algorithm
// (a token bucket seen from its sends): a send at t conforms when t ≥ TAT − τ, where
// the theoretical arrival time TAT moves one interval per send, and τ = (burst−1)
// intervals lets burst sends through at once after enough idleness.
//
// TAT is not stored: it is replayed from the ledger the budget already keeps (the
// grants of the last window and margin, counted per slice), so pacing needs no new
// state, and every replica, reading the same ledger, paces alike. A slice's grants
// are taken as made at its start, which lets up to a slice's worth of sends through
// early; pacing is a smoothing, not the cap, which the window alone keeps exact. With
// burst ≥ max pacing changes nothing the window does not already do.

// pacing is the rule: one send per interval ms, burst at once after idleness.
type pacing struct {
	interval float64 // ms per send: window / max
	burst    int64   // at least 1
}

// off reports whether there is no pacing (a zero pacing).
func (p pacing) off() bool { return p.burst <= 0 || p.interval <= 0 }

// tat replays the ledger (slices of q ms) into the theoretical arrival time of the
// next send, in ms.
func (p pacing) tat(l ledger, q int64) float64 {
	t := math.Inf(-1)
	for _, s := range l {
		t = math.Max(t, float64(s.k*q)) + float64(s.n)*p.interval
	}
	return t
}

// allowed is how many sends may go at now (up to burst), and when the next one may
// when none can.
func (p pacing) allowed(l ledger, q, now int64) (n int64, next int64) {
	if p.off() {
		return math.MaxInt64, now
	}
	tat := math.Max(p.tat(l, q), float64(now))
	tau := float64(p.burst-1) * p.interval
	slack := float64(now) + tau - tat // ≥ 0: the first send conforms
	if slack < 0 {
		return 0, int64(math.Ceil(tat - tau))
	}
	return min(int64(slack/p.interval)+1, p.burst), now
}
