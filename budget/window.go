package budget

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// This file is the pure, deterministic part of the global send budget: a sliding
// window over a ledger of grant counts per slice of time. It knows nothing about
// NATS or clocks; the KV plumbing (kvbudget.go) reads the ledger, calls these
// functions with the time in Unix milliseconds and writes the result back with
// compare-and-swap.
//
// Time is cut into slices of q milliseconds (window/1000 by default); slice k is
// [k·q, (k+1)·q). The ledger holds, per slice, how many sends were granted in it.
// A grant made at time t holds its slot while now < t+span, where span is the
// window plus the margin (see KV) plus one millisecond that makes up for
// truncating the clock to milliseconds. The ledger does not know where in its
// slice a grant was made, so it counts it as made at the slice's last millisecond:
// slice k holds its grants while now < end(k) = (k+1)·q − 1 + span, one slice
// longer at most than the grants' own span. That is never less than the span of
// any grant in the slice, so a window boundary inside a slice is never
// under-counted. A grant goes to slice max(slice of now, newest slice in the
// ledger), which keeps the ledger sorted and, when clocks disagree, makes a
// replica whose clock is behind count in the time of the one ahead.
//
// The ledger keeps only the slices that can still hold a slot: at most
// (span + future)/q + 2 of them (about 1,020 with the defaults), whatever the cap,
// so reading, granting and writing cost the same at a cap of 10^3 or 10^8.

// slot is the count of grants in one slice.
type slot struct {
	k int64 // slice index: the slice covers [k·q, (k+1)·q) in Unix ms
	n int64 // grants in it, at least 1
}

// ledger is the budget's state: the non-empty slices, ascending by index.
type ledger []slot

// total is the number of grants in l.
func (l ledger) total() int64 {
	var t int64
	for _, s := range l {
		t += s.n
	}
	return t
}

// count is the number of grants in slice k.
func (l ledger) count(k int64) int64 {
	if i, ok := slices.BinarySearchFunc(l, k, cmpSlot); ok {
		return l[i].n
	}
	return 0
}

// add puts n grants into slice k, which must be at or after the newest slice.
func (l ledger) add(k, n int64) ledger {
	if len(l) > 0 && l[len(l)-1].k == k {
		l[len(l)-1].n += n
		return l
	}
	return append(l, slot{k, n})
}

// put adds n grants to slice k, anywhere in the ledger.
func (l ledger) put(k, n int64) ledger {
	i, ok := slices.BinarySearchFunc(l, k, cmpSlot)
	if ok {
		l[i].n += n
		return l
	}
	return slices.Insert(l, i, slot{k, n})
}

// take removes up to n grants from slice k and returns the ledger and how many
// were removed.
func (l ledger) take(k, n int64) (ledger, int64) {
	i, ok := slices.BinarySearchFunc(l, k, cmpSlot)
	if !ok || n <= 0 {
		return l, 0
	}
	got := min(n, l[i].n)
	if l[i].n -= got; l[i].n == 0 {
		l = slices.Delete(l, i, i+1)
	}
	return l, got
}

func cmpSlot(s slot, k int64) int {
	switch {
	case s.k < k:
		return -1
	case s.k > k:
		return 1
	}
	return 0
}

// slidingWindow is the rule: at most max grants hold a slot at any time.
type slidingWindow struct {
	max  int64
	span int64 // ms a grant holds its slot (window + margin + 1)
	q    int64 // ms per slice, at least 1
	// future is how far ahead of now a slice may be (a peer's clock running
	// ahead); grants beyond it are counted as if made at now+future, so a clock
	// that is wildly ahead cannot block the budget for longer than that.
	future int64
}

// slice is the index of the slice holding time t (Unix ms).
func (w slidingWindow) slice(t int64) int64 {
	k := t / w.q
	if t < 0 && t%w.q != 0 {
		k--
	}
	return k
}

// end is the first time slice k no longer holds its grants' slots.
func (w slidingWindow) end(k int64) int64 { return (k+1)*w.q - 1 + w.span }

// live returns the slices that still hold slots at now, with slices too far in
// the future merged into the slice of now+future (folded, reported: the grants in
// them are no longer where their replicas counted them). It reuses l's array.
func (w slidingWindow) live(l ledger, now int64) (out ledger, folded bool) {
	l = w.expire(l, now)
	last := w.slice(now + w.future)
	i := len(l)
	for i > 0 && l[i-1].k > last {
		i--
	}
	if i == len(l) {
		return l, false
	}
	n := ledger(l[i:]).total()
	return ledger(l[:i]).add(last, n), true
}

// expire returns the slices that still hold slots at now (a suffix of l).
func (w slidingWindow) expire(l ledger, now int64) ledger {
	i := 0
	for i < len(l) && w.end(l[i].k) <= now {
		i++
	}
	return l[i:]
}

// grant takes the live ledger at now and grants up to want slots. It returns the
// new ledger (l's array, modified), how many were granted and the slice they went
// to.
func (w slidingWindow) grant(l ledger, now int64, want int) (out ledger, granted int, k int64) {
	return w.grantWithin(l, now, int64(want), w.max)
}

// grantWithin is grant with at most limit (≤ max) slots held once it is done.
func (w slidingWindow) grantWithin(l ledger, now int64, want, limit int64) (out ledger, granted int, k int64) {
	free := limit - l.total()
	if free <= 0 || want <= 0 {
		return l, 0, 0
	}
	granted = int(min(int64(want), free))
	k = w.slice(now)
	if len(l) > 0 && l[len(l)-1].k > k {
		k = l[len(l)-1].k
	}
	return l.add(k, int64(granted)), granted, k
}

// nextFree is when the live ledger next has a free slot: now if one is free,
// otherwise when enough of the oldest slices have expired.
func (w slidingWindow) nextFree(l ledger, now int64) int64 {
	return w.nextFreeWithin(l, now, w.max)
}

// nextFreeWithin is nextFree with limit (≤ max) slots in all.
func (w slidingWindow) nextFreeWithin(l ledger, now, limit int64) int64 {
	excess := l.total() - limit // slots to free before one is free
	if excess < 0 {
		return now
	}
	for _, s := range l {
		if excess -= s.n; excess < 0 {
			return w.end(s.k)
		}
	}
	return now // unreachable: excess < total
}

// Encoding of the ledger in the KV entry (version 2):
//
//	0x02                         version
//	uvarint(q)                   ms per slice of the writer
//	uvarint(folds)               how many times a reader folded future slices (live)
//	uvarint(k0)                  index of the oldest non-empty slice (absent when empty)
//	per non-empty slice, ascending:
//	  uvarint(gap<<1 | more)     index minus the previous one's (0 for the first)
//	  uvarint(count-2)           only when more is 1 (the slice holds count ≥ 2)
//
// A slice holding one grant takes one byte (when the previous non-empty slice is
// fewer than 64 slices before it); the ledger takes at most a few bytes per slice
// of the window whatever the cap: about 1 KB at 1,000 sends an hour, 5 KB at 10^8.
//
// Version 1, which this replaces, held one stamp (Unix ms) per grant:
//
//	0x01                      version
//	uvarint(first stamp)      Unix ms of the oldest stamp (absent when empty)
//	per distinct stamp value, ascending:
//	  uvarint(delta<<1 | more) delta to the previous value (0 for the first)
//	  uvarint(count-2)          only when more is 1 (the value occurs count ≥ 2 times)
//
// It is still read, each stamp counted in its slice (conservative: a grant counted
// at its slice's end holds its slot no shorter than its stamp did), so a budget
// upgraded with a live entry does not over-grant.
const (
	ledgerVersionStamps = 1
	ledgerVersion       = 2
)

var errLedgerCorrupt = errors.New("budget ledger entry is corrupt")

// Bounds on decoded values, far above any real one, so that a corrupt entry can
// neither overflow the arithmetic nor make a count absurd.
const (
	maxStamp      = 1 << 52 // ms: year 142,000
	maxSliceMs    = 1 << 40
	maxLedgerSize = 1 << 52 // grants in one entry
)

func encodeLedger(l ledger, q int64, folds uint64) []byte {
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+5*len(l))
	b = append(b, ledgerVersion)
	b = binary.AppendUvarint(b, uint64(q))
	b = binary.AppendUvarint(b, folds)
	if len(l) == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(l[0].k))
	prev := l[0].k
	for _, s := range l {
		gap := uint64(s.k-prev) << 1
		if s.n == 1 {
			b = binary.AppendUvarint(b, gap)
		} else {
			b = binary.AppendUvarint(b, gap|1)
			b = binary.AppendUvarint(b, uint64(s.n-2))
		}
		prev = s.k
	}
	return b
}

// decodeLedger decodes an entry into slices of q ms. Entries written with another
// slice length (a replica configured with another window) and version 1 entries
// (stamps) are converted conservatively: each grant is put in the slice of the
// latest time it may have been made. limit bounds the stamps of a version 1
// entry, so that a corrupt one is rejected rather than counted.
func decodeLedger(b []byte, q int64, limit int64) (l ledger, folds uint64, err error) {
	if len(b) == 0 {
		return nil, 0, nil
	}
	r := varintReader{b: b[1:]}
	switch b[0] {
	case ledgerVersionStamps:
		l, err := decodeStamps(&r, q, limit)
		return l, 0, err
	case ledgerVersion:
	default:
		return nil, 0, fmt.Errorf("%w: unknown version %d", errLedgerCorrupt, b[0])
	}
	from, err := r.next()
	if err != nil {
		return nil, 0, err
	}
	if from < 1 || from > maxSliceMs {
		return nil, 0, fmt.Errorf("%w: slice of %d ms", errLedgerCorrupt, from)
	}
	if folds, err = r.next(); err != nil {
		return nil, 0, err
	}
	l, err = decodeSlices(&r, int64(from), q)
	return l, folds, err
}

// decodeSlices reads the slices of a version 2 entry written with slices of qFrom
// ms, into slices of q ms.
func decodeSlices(r *varintReader, qFrom, q int64) (ledger, error) {
	if r.done() {
		return nil, nil
	}
	k0, err := r.next()
	if err != nil {
		return nil, err
	}
	if k0 > maxStamp/uint64(qFrom) {
		return nil, fmt.Errorf("%w: slice out of range", errLedgerCorrupt)
	}
	w := slidingWindow{q: q}
	l := make(ledger, 0, min(len(r.b), 1<<12)+1) // a byte per slice at least, one more for a grant
	k, total := int64(k0), int64(0)
	for !r.done() {
		gap, n, err := r.run(maxLedgerSize)
		if err != nil {
			return nil, err
		}
		if gap > maxStamp/uint64(qFrom) || uint64(k)+gap > maxStamp/uint64(qFrom) {
			return nil, fmt.Errorf("%w: slice out of range", errLedgerCorrupt)
		} else if len(l) > 0 && gap == 0 {
			return nil, fmt.Errorf("%w: slice %d twice", errLedgerCorrupt, k)
		} else {
			k += int64(gap)
		}
		if n > maxLedgerSize || uint64(total)+n > maxLedgerSize {
			return nil, fmt.Errorf("%w: more than %d grants", errLedgerCorrupt, int64(maxLedgerSize))
		}
		total += int64(n)
		if qFrom == q {
			l = append(l, slot{k, int64(n)})
		} else {
			l = l.add(w.slice((k+1)*qFrom-1), int64(n)) // the slice's last ms, in our slices
		}
	}
	return l, nil
}

// decodeStamps reads the body of a version 1 entry, at most limit stamps, each
// counted in its slice of q ms.
func decodeStamps(r *varintReader, q int64, limit int64) (ledger, error) {
	if r.done() {
		return nil, nil
	}
	first, err := r.next()
	if err != nil {
		return nil, err
	}
	if first > maxStamp {
		return nil, fmt.Errorf("%w: stamp out of range", errLedgerCorrupt)
	}
	w := slidingWindow{q: q}
	var l ledger
	prev, total := int64(first), int64(0)
	for !r.done() {
		delta, n, err := r.run(uint64(limit))
		if err != nil {
			return nil, err
		}
		if delta > maxStamp || uint64(prev)+delta > maxStamp {
			return nil, fmt.Errorf("%w: stamp out of range", errLedgerCorrupt)
		}
		if n > uint64(limit) || uint64(total)+n > uint64(limit) {
			return nil, fmt.Errorf("%w: more than %d stamps", errLedgerCorrupt, limit)
		}
		prev += int64(delta)
		total += int64(n)
		l = l.add(w.slice(prev), int64(n))
	}
	return l, nil
}

// run reads one run of the encoding: uvarint(step<<1 | more), then uvarint(count-2)
// when more is 1. It returns the step and the count (1 without more), refusing a
// count above limit (which also keeps count-2+2 from overflowing).
func (r *varintReader) run(limit uint64) (step, count uint64, err error) {
	v, err := r.next()
	if err != nil {
		return 0, 0, err
	}
	count = 1
	if v&1 == 1 {
		if count, err = r.next(); err != nil {
			return 0, 0, err
		}
		if count > limit {
			return 0, 0, fmt.Errorf("%w: a count over %d", errLedgerCorrupt, limit)
		}
		count += 2
	}
	return v >> 1, count, nil
}

// varintReader reads uvarints off an entry.
type varintReader struct{ b []byte }

func (r *varintReader) done() bool { return len(r.b) == 0 }

func (r *varintReader) next() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", errLedgerCorrupt)
	}
	r.b = r.b[n:]
	return v, nil
}
