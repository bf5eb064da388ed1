package budget

import (
	"encoding/binary"
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
	q      int64
	max    int
	grants []*refGrant // may still be alive
	done   []*refGrant // expired: only for the final check
}

type refGrant struct {
	at    int64 // when it was granted
	slice int64 // the slice it was counted in
	count int   // granted and not released
}

// holds reports whether g holds its slot at now under the documented rule: until
// its slice's last millisecond plus span.
func (m *refModel) holds(g *refGrant, now int64) bool {
	return now < (g.slice+1)*m.q-1+m.span
}

// expire moves the grants that can no longer be alive (time only moves forward)
// out of the way, so the brute-force count stays cheap.
func (m *refModel) expire(now int64) {
	keep := m.grants[:0]
	for _, g := range m.grants {
		if m.holds(g, now) {
			keep = append(keep, g)
		} else {
			m.done = append(m.done, g)
		}
	}
	m.grants = keep
}

// alive counts the grants holding a slot at now by the slice rule.
func (m *refModel) alive(now int64) int {
	n := 0
	for _, g := range m.grants {
		if m.holds(g, now) {
			n += g.count
		}
	}
	return n
}

// exact counts the grants made in (now−span, ∞): those an exact ledger of grant
// times would still count at now.
func (m *refModel) exact(now int64) int {
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
// the slice rule leaves free (no over-grant, no starvation), its count lies between
// what an exact ledger of grant times would count now and one slice earlier (a
// grant held at most one slice longer), it releases exactly what was unused and
// alive, and no window of length span ever holds more than max net grants at the
// times they were granted.
func TestWindowAgainstReferenceModel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		max        int
		span       int64
		q          int64
		maxStep    int64 // largest clock step between operations (ms)
		maxWant    int
		iterations int
		seeds      uint64
	}{
		{"small cap, 1ms slices", 3, 100, 1, 20, 4, 4000, 25},
		{"small cap, 7ms slices", 3, 100, 7, 20, 4, 4000, 25},
		{"cap 30, bursts, slices of span/1000", 30, 4000, 4, 300, 4, 4000, 25},
		{"cap 30, slices not dividing the span", 30, 4001, 13, 300, 4, 4000, 25},
		{"cap 1000 per hour", 1000, 3_636_001, 3_600, 10_000, 8, 3000, 3},
		{"cap 1, steps longer than the window", 1, 50, 3, 120, 2, 2000, 25},
		{"steps shorter than a slice", 5, 1000, 100, 30, 3, 3000, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range tc.seeds {
				runWindowModel(t, seed, tc.max, tc.span, tc.q, tc.maxStep, tc.maxWant, tc.iterations)
			}
		})
	}
}

func runWindowModel(t *testing.T, seed uint64, maxN int, span, q, maxStep int64, maxWant, iterations int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x1091))
	w := slidingWindow{max: int64(maxN), span: span, q: q, future: span}
	m := &refModel{span: span, q: q, max: maxN}
	var l ledger
	now := int64(1_700_000_000_000) + rng.Int64N(q)
	for i := range iterations {
		now += rng.Int64N(maxStep + 1)
		m.expire(now)
		fail := func(format string, args ...any) {
			t.Fatalf("seed %d op %d at %d: %s", seed, i, now, fmt.Sprintf(format, args...))
		}
		// The ledger goes through the KV encoding on every step, as it does in use.
		var err error
		if l, _, err = decodeLedger(encodeLedger(l, q, 0), q, testLedgerLimit); err != nil {
			fail("decode: %v", err)
		}
		l = w.liveOnly(l, now)
		if got, want := int(l.total()), m.alive(now); got != want {
			fail("ledger holds %d live grants, model %d", got, want)
		}
		if lo, hi := m.exact(now), m.exact(now-q+1); int(l.total()) < lo || int(l.total()) > hi {
			fail("ledger counts %d, want between %d (exact now) and %d (exact one slice ago)", l.total(), lo, hi)
		}
		if bound := (span+w.future)/q + 2; int64(len(l)) > bound {
			fail("ledger holds %d slices, bound %d", len(l), bound)
		}
		if rng.IntN(3) > 0 || len(m.grants) == 0 {
			want := 1 + rng.IntN(maxWant)
			free := maxN - m.alive(now)
			out, g, k := w.grant(l, now, want)
			if exp := min(want, max(free, 0)); g != exp {
				fail("granted %d of %d, model has %d free", g, want, free)
			}
			if g > 0 && k != w.slice(now) {
				fail("counted in slice %d, want the slice of now %d", k, w.slice(now))
			}
			if g == 0 {
				if next := w.nextFree(l, now); next <= now || m.alive(next) >= maxN || m.alive(next-1) < maxN {
					fail("next free %d is not the first time a slot frees", next)
				}
			}
			l = out
			if g > 0 {
				m.grants = append(m.grants, &refGrant{at: now, slice: k, count: g})
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
		if m.holds(gr, now) {
			expect = n // alive: every unused send comes back
		}
		out, removed := l.take(gr.slice, int64(n))
		if int(removed) != expect {
			fail("released %d of a grant in slice %d, want %d", removed, gr.slice, expect)
		}
		l = out
		if expect > 0 {
			gr.count -= n
		}
	}
	checkWindows(t, fmt.Sprintf("seed %d", seed), append(m.done, m.grants...), maxN, span)
}

// checkWindows fails if some window of length span holds more than maxN of the
// grants' net sends, at the times they were granted.
func checkWindows(t *testing.T, what string, grants []*refGrant, maxN int, span int64) {
	t.Helper()
	var net []int64
	for _, g := range grants {
		for range g.count {
			net = append(net, g.at)
		}
	}
	slices.Sort(net)
	for i := 0; i+maxN < len(net); i++ {
		if net[i+maxN]-net[i] < span {
			t.Fatalf("%s: %d grants within %dms (from %d to %d), max %d", what, maxN+1, span, net[i], net[i+maxN], maxN)
		}
	}
}

// TestWindowBoundaryInsideASlice: a grant made at the end of its slice must hold
// its slot for its whole span, although the ledger only knows its slice.
func TestWindowBoundaryInsideASlice(t *testing.T) {
	w := slidingWindow{max: 1, span: 100, q: 10, future: 100}
	l, g, _ := w.grant(nil, 9, 1) // the last ms of slice 0
	if g != 1 {
		t.Fatalf("granted %d, want 1", g)
	}
	for _, now := range []int64{100, 108} { // within 9+span
		if _, g, _ := w.grant(w.liveOnly(slices.Clone(l), now), now, 1); g != 0 {
			t.Fatalf("granted %d at %d, %dms after a grant at 9 with a span of 100", g, now, now-9)
		}
	}
	if next := w.nextFree(l, 50); next != 109 {
		t.Fatalf("next free %d, want 109", next)
	}
	if _, g, _ := w.grant(w.liveOnly(l, 109), 109, 1); g != 1 {
		t.Fatalf("granted %d at 109, want 1", g)
	}
}

// TestWindowWithSkewAndDelay simulates replicas whose clocks disagree and requests
// that reach ServiceNow some time after their grant: as long as skew spread plus
// delay stay within the margin, no window of length W in true time holds more than
// max requests (the bound documented on KV).
func TestWindowWithSkewAndDelay(t *testing.T) {
	for _, tc := range []struct {
		name          string
		max           int
		window        int64
		margin        int64
		q             int64
		skew, delay   int64 // spread of clock offsets; largest delay grant->request
		replicas      int
		wantViolation bool
	}{
		{"no skew, no delay", 10, 1000, 0, 1, 0, 0, 3, false},
		{"no skew, no delay, 10ms slices", 10, 1000, 0, 10, 0, 0, 3, false},
		{"skew within margin", 10, 1000, 50, 1, 50, 0, 3, false},
		{"skew within margin, 7ms slices", 10, 1000, 50, 7, 50, 0, 3, false},
		{"delay within margin", 10, 1000, 50, 5, 0, 50, 3, false},
		{"skew plus delay within margin", 30, 4000, 100, 4, 60, 40, 3, false},
		{"delay beyond a zero margin", 10, 1000, 0, 1, 0, 200, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			violated := false
			for seed := range uint64(40) {
				if simulateSkew(seed, tc.max, tc.window, tc.margin, tc.q, tc.skew, tc.delay, tc.replicas) {
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
func simulateSkew(seed uint64, maxN int, window, margin, q, skew, delay int64, replicas int) bool {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := slidingWindow{max: int64(maxN), span: window + margin + 1, q: q, future: max(margin, 1)}
	offsets := make([]int64, replicas)
	for i := range offsets {
		offsets[i] = rng.Int64N(skew + 1)
	}
	offsets[0], offsets[replicas-1] = 0, skew // the full spread is used
	var l ledger
	var requests []int64
	now := int64(1_700_000_000_000)
	for range 3000 {
		now += rng.Int64N(window/10 + 1)
		r := rng.IntN(replicas)
		local := now + offsets[r]
		l = w.liveOnly(l, local)
		out, g, _ := w.grant(l, local, 1+rng.IntN(4))
		l = out
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

func TestWindowFutureSlicesAreClamped(t *testing.T) {
	w := slidingWindow{max: 2, span: 1000, q: 10, future: 50}
	now := int64(10_000)
	l := ledger{{k: w.slice(now + 3_600_000), n: 1}, {k: w.slice(now + 3_700_000), n: 1}} // a clock an hour ahead
	l = w.liveOnly(l, now)
	if want := (ledger{{k: w.slice(now + 50), n: 2}}); !slices.Equal(l, want) {
		t.Fatalf("live = %v, want %v", l, want)
	}
	if next, want := w.nextFree(l, now), w.end(w.slice(now+50)); next != want {
		t.Fatalf("next free = %d, want %d", next, want)
	}
	// A grant after a slice in the (tolerated) future is counted in that slice.
	w.max = 3
	_, g, k := w.grant(l, now, 1)
	if g != 1 || k != w.slice(now+50) {
		t.Fatalf("grant = %d in slice %d, want 1 in %d", g, k, w.slice(now+50))
	}
}

// encodeStampsV1 writes a ledger in the format of version 1 (one stamp per grant),
// as budgets before version 2 did.
func encodeStampsV1(s []int64) []byte {
	b := []byte{ledgerVersionStamps}
	if len(s) == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(s[0]))
	prev := s[0]
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j] == s[i] {
			j++
		}
		delta := uint64(s[i] - prev)
		if j-i == 1 {
			b = binary.AppendUvarint(b, delta<<1)
		} else {
			b = binary.AppendUvarint(b, delta<<1|1)
			b = binary.AppendUvarint(b, uint64(j-i-2))
		}
		prev = s[i]
		i = j
	}
	return b
}

// TestLedgerReadsOtherFormats: an entry of version 1 (stamps) and one written with
// another slice length are read with every grant counted in the slice of the latest
// time it may have been made, so each holds its slot at least as long as before.
func TestLedgerReadsOtherFormats(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := int64(1_700_000_000_000)
	for _, q := range []int64{1, 7, 3600} {
		t.Run(fmt.Sprintf("into %dms slices", q), func(t *testing.T) {
			stampsV1 := make([]int64, 500)
			for i := range stampsV1 {
				stampsV1[i] = base + rng.Int64N(3_600_000)
			}
			stampsV1 = append(stampsV1, stampsV1[3], stampsV1[3]) // repeats
			slices.Sort(stampsV1)
			got, _, err := decodeLedger(encodeStampsV1(stampsV1), q, testLedgerLimit)
			if err != nil {
				t.Fatal(err)
			}
			w := slidingWindow{q: q}
			var want ledger
			for _, s := range stampsV1 {
				want = want.add(w.slice(s), 1)
			}
			if !slices.Equal(got, want) {
				t.Fatal("version 1 stamps not counted in their slices")
			}
			// The same grants written by a replica with 5ms slices.
			var in5 ledger
			for _, s := range stampsV1 {
				in5 = in5.add(s/5, 1)
			}
			got, _, err = decodeLedger(encodeLedger(in5, 5, 0), q, testLedgerLimit)
			if err != nil {
				t.Fatal(err)
			}
			if got.total() != int64(len(stampsV1)) {
				t.Fatalf("read %d grants, want %d", got.total(), len(stampsV1))
			}
			for _, s := range got {
				if !slices.IsSortedFunc(got, func(a, b slot) int { return int(a.k - b.k) }) || s.n < 1 {
					t.Fatalf("ledger %v not sorted or with an empty slice", got)
				}
			}
			// Conservative: per time t, no fewer grants at or after t than the stamps.
			for _, s := range stampsV1 {
				var later int64
				for _, x := range got {
					if (x.k+1)*q-1 >= s {
						later += x.n
					}
				}
				var truth int64
				for _, x := range stampsV1 {
					if x >= s {
						truth++
					}
				}
				if later < truth {
					t.Fatalf("%d grants at or after %d, the entry held %d", later, s, truth)
				}
			}
		})
	}
}

func TestLedgerEncoding(t *testing.T) {
	const q = 3600 // an hour in 1,000 slices
	base := int64(1_700_000_000_000) / q
	spread := make(ledger, 1000)
	for i := range spread {
		spread[i] = slot{k: base + int64(i), n: 1} // 1,000 an hour, evenly
	}
	dense := make(ledger, 1000)
	for i := range dense {
		dense[i] = slot{k: base + int64(i), n: 100_000} // 10^8 an hour
	}
	sparse := ledger{{base, 3}, {base + 500, 1}, {base + 999, 7}}
	for _, tc := range []struct {
		name     string
		l        ledger
		maxBytes int
	}{
		{"empty", nil, 4}, // version, slice length, fold count
		{"one", ledger{{base, 1}}, 12},
		{"1000 spread over an hour", spread, 1013},
		{"10^8 over an hour", dense, 4013},
		{"three slices far apart", sparse, 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeLedger(tc.l, q, 0)
			if len(b) > tc.maxBytes {
				t.Errorf("%d slices encode to %d bytes, want at most %d", len(tc.l), len(b), tc.maxBytes)
			}
			t.Logf("%d slices: %d bytes", len(tc.l), len(b))
			got, _, err := decodeLedger(b, q, testLedgerLimit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.l) {
				t.Fatalf("round trip changed the ledger: %v", got)
			}
		})
	}
}

func TestLedgerDecodeRejectsCorruptEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"unknown version", []byte{3, 1}},
		{"v1 truncated varint", []byte{1, 0x80}},
		{"v1 truncated repeat count", []byte{1, 5, 1}},
		{"v1 huge repeat count", []byte{1, 5, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"v1 stamp out of range", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"no slice length", []byte{2}},
		{"zero slice length", []byte{2, 0}},
		{"truncated fold count", []byte{2, 10, 0x80}},
		{"truncated varint", []byte{2, 10, 0, 0x80}},
		{"truncated count", []byte{2, 10, 0, 5, 1}},
		{"slice out of range", []byte{2, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"gap out of range", []byte{2, 1, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"same slice twice", []byte{2, 10, 0, 5, 0, 0}},
		{"huge count", []byte{2, 10, 0, 5, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := decodeLedger(tc.b, 10, testLedgerLimit); !errors.Is(err, errLedgerCorrupt) {
				t.Fatalf("decode = %v, want errLedgerCorrupt", err)
			}
		})
	}
	// Random bytes never panic and never decode into an unsorted ledger.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, 2+rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		b[0] = byte(1 + rng.IntN(2))
		l, _, err := decodeLedger(b, 1+rng.Int64N(100), testLedgerLimit)
		if err == nil {
			for i := range l {
				if l[i].n < 1 || i > 0 && l[i].k <= l[i-1].k {
					t.Fatalf("decoded a bad ledger %v from %x", l, b)
				}
			}
		}
	}
}

// liveOnly is live without its fold report.
func (w slidingWindow) liveOnly(l ledger, now int64) ledger {
	l, _ = w.live(l, now)
	return l
}
