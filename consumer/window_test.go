package consumer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

const testLedgerLimit = 1 << 16

// refModel is the reference for the window algorithm: every grant ever made as a
// (time, count) record, counted by brute force.
type refModel struct {
	span   int64
	max    int
	grants []*refGrant // may still be alive
	done   []*refGrant // expired: only for the final check
}

type refGrant struct {
	at    int64
	count int // granted and not released
}

// expire moves the grants that can no longer be alive (time only moves forward)
// out of the way, so the brute-force count stays cheap.
func (m *refModel) expire(now int64) {
	keep := m.grants[:0]
	for _, g := range m.grants {
		if now-g.at < m.span {
			keep = append(keep, g)
		} else {
			m.done = append(m.done, g)
		}
	}
	m.grants = keep
}

func (m *refModel) alive(now int64) int {
	n := 0
	for _, g := range m.grants {
		if now-g.at < m.span {
			n += g.count
		}
	}
	return n
}

// TestWindowAgainstReferenceModel drives the pure algorithm with random acquires and
// releases at random times and checks it against refModel: it grants exactly what
// the model says is free (no over-grant, no starvation), releases exactly what was
// unused and alive, and no window of length span ever holds more than max net grants.
func TestWindowAgainstReferenceModel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		max        int
		span       int64
		maxStep    int64 // largest clock step between operations (ms)
		maxWant    int
		iterations int
		seeds      uint64
	}{
		{"small cap, short steps", 3, 100, 20, 4, 4000, 25},
		{"cap 30, bursts", 30, 4000, 300, 4, 4000, 25},
		{"cap 1000 per hour", 1000, 3_600_000, 10_000, 8, 3000, 3},
		{"cap 1, steps longer than the window", 1, 50, 120, 2, 2000, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range tc.seeds {
				runWindowModel(t, seed, tc.max, tc.span, tc.maxStep, tc.maxWant, tc.iterations)
			}
		})
	}
}

func runWindowModel(t *testing.T, seed uint64, maxN int, span, maxStep int64, maxWant, iterations int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x1091))
	w := slidingWindow{max: maxN, span: span, future: span}
	m := &refModel{span: span, max: maxN}
	var ledger stamps
	now := int64(1_700_000_000_000)
	for i := range iterations {
		now += rng.Int64N(maxStep + 1)
		m.expire(now)
		fail := func(format string, args ...any) {
			t.Fatalf("seed %d op %d at %d: %s", seed, i, now, fmt.Sprintf(format, args...))
		}
		// The ledger goes through the KV encoding on every step, as it does in use.
		var err error
		if ledger, err = decodeStamps(encodeStamps(ledger), testLedgerLimit); err != nil {
			fail("decode: %v", err)
		}
		ledger = w.live(ledger, now)
		if got, want := len(ledger), m.alive(now); got != want {
			fail("ledger holds %d live stamps, model %d", got, want)
		}
		if rng.IntN(3) > 0 || len(m.grants) == 0 {
			want := 1 + rng.IntN(maxWant)
			free := maxN - m.alive(now)
			out, g, at := w.grant(ledger, now, want)
			if exp := min(want, max(free, 0)); g != exp {
				fail("granted %d of %d, model has %d free", g, want, free)
			}
			if g > 0 && at != now {
				fail("stamped %d, want now", at)
			}
			if g == 0 {
				if next := w.nextFree(ledger, now); next <= now || m.alive(next) >= maxN || m.alive(next-1) < maxN {
					fail("next free %d is not the first time a slot frees", next)
				}
			}
			ledger = out
			if g > 0 {
				m.grants = append(m.grants, &refGrant{at: at, count: g})
			}
			continue
		}
		// Release part of a random earlier grant that still has unreleased sends.
		// Now and then one that has expired already: nothing comes back.
		gr := m.grants[rng.IntN(len(m.grants))]
		if len(m.done) > 0 && rng.IntN(5) == 0 {
			gr = m.done[rng.IntN(len(m.done))]
		}
		if gr.count == 0 {
			continue
		}
		n := 1 + rng.IntN(gr.count)
		expect := 0
		if now-gr.at < span {
			expect = n // alive: every unused send comes back
		}
		out, removed := remove(ledger, gr.at, n)
		if removed != expect {
			fail("released %d of a grant at %d, want %d", removed, gr.at, expect)
		}
		ledger = out
		if expect > 0 {
			gr.count -= n
		}
	}
	// No window of length span holds more than max net grants.
	var net []int64
	for _, g := range append(m.done, m.grants...) {
		for range g.count {
			net = append(net, g.at)
		}
	}
	slices.Sort(net)
	for i := 0; i+maxN < len(net); i++ {
		if net[i+maxN]-net[i] < span {
			t.Fatalf("seed %d: %d grants within %dms (from %d to %d), max %d", seed, maxN+1, span, net[i], net[i+maxN], maxN)
		}
	}
}

// TestWindowWithSkewAndDelay simulates replicas whose clocks disagree and requests
// that reach ServiceNow some time after their grant: as long as skew spread plus
// delay stay within the margin, no window of length W in true time holds more than
// max requests (the bound documented on KVBudget).
func TestWindowWithSkewAndDelay(t *testing.T) {
	for _, tc := range []struct {
		name          string
		max           int
		window        int64
		margin        int64
		skew, delay   int64 // spread of clock offsets; largest delay grant->request
		replicas      int
		wantViolation bool
	}{
		{"no skew, no delay", 10, 1000, 0, 0, 0, 3, false},
		{"skew within margin", 10, 1000, 50, 50, 0, 3, false},
		{"delay within margin", 10, 1000, 50, 0, 50, 3, false},
		{"skew plus delay within margin", 30, 4000, 100, 60, 40, 3, false},
		{"delay beyond a zero margin", 10, 1000, 0, 0, 200, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			violated := false
			for seed := range uint64(40) {
				if simulateSkew(seed, tc.max, tc.window, tc.margin, tc.skew, tc.delay, tc.replicas) {
					violated = true
					if !tc.wantViolation {
						t.Fatalf("seed %d: a true window of %dms held more than %d requests", seed, tc.window, tc.max)
					}
				}
			}
			if tc.wantViolation && !violated {
				t.Fatal("the simulation never exceeded the cap where it should be able to: it tests nothing")
			}
		})
	}
}

// simulateSkew reports whether some true window of length window held more than max
// requests.
func simulateSkew(seed uint64, maxN int, window, margin, skew, delay int64, replicas int) bool {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := slidingWindow{max: maxN, span: window + margin + 1, future: max(margin, 1)}
	offsets := make([]int64, replicas)
	for i := range offsets {
		offsets[i] = rng.Int64N(skew + 1)
	}
	offsets[0], offsets[replicas-1] = 0, skew // the full spread is used
	var ledger stamps
	var requests []int64
	now := int64(1_700_000_000_000)
	for range 3000 {
		now += rng.Int64N(window/10 + 1)
		r := rng.IntN(replicas)
		local := now + offsets[r]
		ledger = w.live(ledger, local)
		out, g, _ := w.grant(ledger, local, 1+rng.IntN(4))
		ledger = out
		for range g {
			// The request happens after the grant; delays are random, so later
			// grants can overtake earlier ones.
			requests = append(requests, now+rng.Int64N(delay+1))
		}
	}
	slices.Sort(requests)
	for i := 0; i+maxN < len(requests); i++ {
		if requests[i+maxN]-requests[i] < window {
			return true
		}
	}
	return false
}

func TestWindowFutureStampsAreClamped(t *testing.T) {
	w := slidingWindow{max: 2, span: 1000, future: 50}
	now := int64(10_000)
	ledger := stamps{now + 3_600_000, now + 3_600_000} // a clock an hour ahead
	ledger = w.live(ledger, now)
	if want := (stamps{now + 50, now + 50}); !slices.Equal(ledger, want) {
		t.Fatalf("live = %v, want %v", ledger, want)
	}
	if next := w.nextFree(ledger, now); next != now+50+1000 {
		t.Fatalf("next free = %d, want %d", next, now+1050)
	}
	// A grant after a stamp in the (tolerated) future is stamped at that stamp.
	w.max = 3
	_, g, at := w.grant(ledger, now, 1)
	if g != 1 || at != now+50 {
		t.Fatalf("grant = %d at %d, want 1 at %d", g, at, now+50)
	}
}

func TestLedgerEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := int64(1_700_000_000_000)
	spread := make(stamps, 1000)
	for i := range spread {
		spread[i] = base + int64(i)*3600 // 1,000 an hour, evenly
	}
	bursts := make(stamps, 0, 1000)
	for i := range 250 {
		for range 4 {
			bursts = append(bursts, base+int64(i)*14_400) // Acquire(4) every 14.4 s
		}
	}
	random := make(stamps, 1000)
	for i := range random {
		random[i] = base + rng.Int64N(3_600_000)
	}
	slices.Sort(random)
	for _, tc := range []struct {
		name     string
		s        stamps
		maxBytes int
	}{
		{"empty", nil, 1},
		{"one", stamps{base}, 9},
		{"1000 spread over an hour", spread, 2010},
		{"1000 in bursts of 4", bursts, 1010},
		{"1000 random in an hour", random, 2100},
		{"all equal", stamps{base, base, base}, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeStamps(tc.s)
			if len(b) > tc.maxBytes {
				t.Errorf("%d stamps encode to %d bytes, want at most %d", len(tc.s), len(b), tc.maxBytes)
			}
			t.Logf("%d stamps: %d bytes", len(tc.s), len(b))
			got, err := decodeStamps(b, testLedgerLimit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.s) {
				t.Fatalf("round trip changed the ledger")
			}
		})
	}
}

func TestLedgerDecodeRejectsCorruptEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"unknown version", []byte{2, 1}},
		{"truncated varint", []byte{1, 0x80}},
		{"truncated repeat count", []byte{1, 5, 1}},
		{"huge repeat count", []byte{1, 5, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"stamp out of range", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeStamps(tc.b, testLedgerLimit); !errors.Is(err, errLedgerCorrupt) {
				t.Fatalf("decode = %v, want errLedgerCorrupt", err)
			}
		})
	}
	// Random bytes never panic.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, 1+rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		b[0] = ledgerVersion
		s, err := decodeStamps(b, testLedgerLimit)
		if err == nil && !slices.IsSorted(s) {
			t.Fatalf("decoded an unsorted ledger from %x", b)
		}
	}
}
