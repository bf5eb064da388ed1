package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// This file is the pure, deterministic part of the global send budget: a sliding
// window over a ledger of grant stamps. It knows nothing about NATS or clocks; the
// KV plumbing (kvbudget.go) reads the ledger, calls these functions with the time in
// Unix milliseconds and writes the result back with compare-and-swap.
//
// The ledger is a sorted (ascending) list of stamps, one per granted send, in Unix
// milliseconds. A stamp s holds one slot while now < s+span, where span is the
// window plus the margin (see KVBudget) plus one millisecond that makes up for
// truncating the clock to milliseconds. A grant appends its stamps at
// max(now, newest stamp), which keeps the ledger sorted and, when clocks disagree,
// makes a replica whose clock is behind stamp in the time of the one ahead.

// stamps is a ledger: grant times in Unix milliseconds, ascending.
type stamps []int64

// slidingWindow is the rule: at most max stamps alive at any time.
type slidingWindow struct {
	max  int
	span int64 // ms a stamp holds its slot
	// future is how far ahead of now a stamp may be (a peer's clock running ahead);
	// stamps beyond it are counted as if made at now+future, so a clock that is
	// wildly ahead cannot block the budget for longer than that.
	future int64
}

// live returns the stamps that still hold a slot at now, with stamps too far in the
// future pulled back to now+future. It reuses s's array.
func (w slidingWindow) live(s stamps, now int64) stamps {
	s = w.expire(s, now)
	for j := len(s) - 1; j >= 0 && s[j] > now+w.future; j-- {
		s[j] = now + w.future
	}
	return s
}

// expire returns the stamps that still hold a slot at now (a suffix of s).
func (w slidingWindow) expire(s stamps, now int64) stamps {
	i, _ := slices.BinarySearch(s, now-w.span+1) // first stamp > now-span
	return s[i:]
}

// grant takes the live ledger at now and grants up to want slots. It returns the
// new ledger (a fresh slice), how many were granted and the stamp they carry.
func (w slidingWindow) grant(s stamps, now int64, want int) (out stamps, granted int, at int64) {
	granted = min(want, w.max-len(s))
	if granted <= 0 {
		return s, 0, 0
	}
	at = now
	if len(s) > 0 && s[len(s)-1] > at {
		at = s[len(s)-1]
	}
	out = make(stamps, len(s), len(s)+granted)
	copy(out, s)
	for range granted {
		out = append(out, at)
	}
	return out, granted, at
}

// nextFree is when the live ledger next has a free slot: now if one is free,
// otherwise when enough of the oldest stamps have expired.
func (w slidingWindow) nextFree(s stamps, now int64) int64 {
	if len(s) < w.max {
		return now
	}
	return s[len(s)-w.max] + w.span
}

// remove takes up to n stamps equal to at out of s and returns the new ledger (a
// fresh slice) and how many were removed.
func remove(s stamps, at int64, n int) (stamps, int) {
	lo, _ := slices.BinarySearch(s, at)
	hi := lo
	for hi < len(s) && s[hi] == at && hi-lo < n {
		hi++
	}
	out := make(stamps, 0, len(s)-(hi-lo))
	out = append(out, s[:lo]...)
	out = append(out, s[hi:]...)
	return out, hi - lo
}

// Encoding of the ledger in the KV entry (version 1):
//
//	0x01                      version
//	uvarint(first stamp)      Unix ms of the oldest stamp (absent when empty)
//	per distinct stamp value, ascending:
//	  uvarint(delta<<1 | more) delta to the previous value (0 for the first)
//	  uvarint(count-2)          only when more is 1 (the value occurs count ≥ 2 times)
//
// With 1,000 grants an hour spread evenly (3.6 s apart) a stamp takes 2 bytes; grants
// made together (one Acquire of several) share one value: a group of 4 takes about
// 4 bytes.
const ledgerVersion = 1

var errLedgerCorrupt = errors.New("budget ledger entry is corrupt")

func encodeStamps(s stamps) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+2*len(s))
	b = append(b, ledgerVersion)
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

// decodeStamps decodes a ledger of at most limit stamps (a bound well above the cap,
// so that a corrupt entry cannot make us allocate without limit).
func decodeStamps(b []byte, limit int) (stamps, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != ledgerVersion {
		return nil, fmt.Errorf("%w: unknown version %d", errLedgerCorrupt, b[0])
	}
	b = b[1:]
	if len(b) == 0 {
		return nil, nil
	}
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad varint", errLedgerCorrupt)
		}
		b = b[n:]
		return v, nil
	}
	first, err := next()
	if err != nil {
		return nil, err
	}
	if first > 1<<62 {
		return nil, fmt.Errorf("%w: stamp out of range", errLedgerCorrupt)
	}
	var s stamps
	prev := int64(first)
	for len(b) > 0 {
		v, err := next()
		if err != nil {
			return nil, err
		}
		count := uint64(1)
		if v&1 == 1 {
			c, err := next()
			if err != nil {
				return nil, err
			}
			count = c + 2
		}
		delta := v >> 1
		if delta > 1<<62 || prev > 1<<62-int64(delta) {
			return nil, fmt.Errorf("%w: stamp out of range", errLedgerCorrupt)
		}
		if count > uint64(limit) || uint64(len(s))+count > uint64(limit) {
			return nil, fmt.Errorf("%w: more than %d stamps", errLedgerCorrupt, limit)
		}
		prev += int64(delta)
		for range count {
			s = append(s, prev)
		}
	}
	return s, nil
}
