package status

import (
	"math"
	"time"

	"github.com/ionix/ionixsnow/budget"
)

// Ledger is what DrainETA knows of the send budget.
type Ledger struct {
	// Used is how many grants still hold a slot.
	Used int
	// Limit is the cap: sends per window. Below 1 means no cap.
	Limit int
	// Hold is how long one grant holds its slot: the window plus the budget's margin.
	Hold time.Duration
	// NextFreeAt is when the next slot frees; zero when one is free now.
	NextFreeAt time.Time
	// FreesAt, when known, is when each used slot frees (the end of its slice),
	// ascending, one per used slot. Nil: estimated from Used and NextFreeAt (see
	// DrainETA).
	FreesAt []time.Time
	// Interval is the time between two paced sends (cap.pacing: even), zero
	// without pacing; PacedNow is how many pacing lets go at once now.
	Interval time.Duration
	PacedNow int
}

// LedgerOf is the Ledger of a budget state read from budget.KV, whose
// grants hold their slot for the window plus margin.
func LedgerOf(s budget.State, margin time.Duration) Ledger {
	l := Ledger{
		Used:  s.Used,
		Limit: s.Limit - s.Reserved, // a backlog's ordinary sends: the reserve is for High items

		Hold:       time.Duration(s.WindowSeconds*float64(time.Second)) + margin,
		NextFreeAt: s.NextFreeAt,
		Interval:   s.Interval,
		PacedNow:   s.PacedNow,
	}
	if s.Hold > 0 && len(s.FreesAt) == s.Used {
		l.Hold, l.FreesAt = s.Hold, s.FreesAt // from the ledger's own slices: exact
	}
	return l
}

// ETA is how long sending a backlog takes at the cap.
type ETA struct {
	// Backlog is the number of sends counted: the consumer's pending plus ack
	// pending messages (all the stream's messages while the consumer does not
	// exist). Ack pending ones waiting for a redelivery need a new grant; one in
	// flight already holds its grant, so it is counted twice: conservative by at
	// most the messages in flight (consumer.concurrency × replicas).
	Backlog uint64 `json:"backlog"`
	// FreeNow is how many sends the budget would grant at once.
	FreeNow int `json:"free_now"`
	// LimitedByCap is true when the backlog does not fit in the free slots, so the
	// cap, not ServiceNow, sets the pace.
	LimitedByCap bool `json:"limited_by_cap"`
	// Approximate is true when the times the used slots free were estimated
	// rather than known (see DrainETA).
	Approximate bool `json:"approximate"`
	// Duration is the time until the budget grants the backlog's last send.
	Duration time.Duration `json:"-"`
	// At is now + Duration.
	At time.Time `json:"at"`
}

// Seconds is Duration in whole seconds, rounded to the nearest.
func (e ETA) Seconds() int64 { return int64(e.Duration.Round(time.Second) / time.Second) }

// maxETA bounds an ETA (about 290 years) instead of overflowing.
const maxETA = time.Duration(math.MaxInt64)

// DrainETA is the time, from now, until the budget has granted a send for each of
// backlog messages, if nothing else spends it (no other sends, no retries, no items
// filtered for free) and ServiceNow keeps up.
//
// The budget is a sliding window: at most Limit grants hold a slot at once, each for
// Hold (window + margin). With R = Limit − Used slots free now, the sends are
// granted in this order:
//
//   - sends 1…R at once;
//   - send j, R < j ≤ Limit, when the (j−R)-th oldest used slot frees (after the
//     Used − Limit slots in excess of the cap, if the cap was lowered);
//   - send j > Limit exactly Hold after send j − Limit, whose slot it takes over.
//
// So with B = q·Limit + r (1 ≤ r ≤ Limit), the last send comes q·Hold after send r:
// ETA = 0 when B ≤ R; otherwise q·Hold, plus, when r > R, the time until the
// (r−R)-th oldest used slot frees.
//
// That time is exact with FreesAt (from the ledger's slices). budget.State gives
// only Used and NextFreeAt, so without FreesAt the used slots are taken to free
// evenly: with the cap full, from NextFreeAt (exact for the first) to now + Hold,
// the latest a grant made by now can free; with a slot free now, at now + k·Hold/Used
// for the k-th, as a steady flow at the cap leaves them. Either way the estimate and
// the truth lie in the same interval of at most Hold, and they agree when the slots
// came from a steady flow.
func DrainETA(backlog uint64, l Ledger, now time.Time) ETA {
	e := ETA{Backlog: backlog, At: now}
	if l.Limit < 1 || l.Hold <= 0 {
		return e
	}
	used := max(l.Used, 0)
	free := max(l.Limit-used, 0)
	e.FreeNow = free
	if backlog <= uint64(free) {
		// The window has room for all; pacing may still spread them.
		e.Duration = l.pacedETA(backlog)
		e.LimitedByCap = e.Duration > 0
		e.At = now.Add(e.Duration)
		return e
	}
	e.LimitedByCap = true
	limit := uint64(l.Limit)
	rounds := (backlog - 1) / limit
	r := backlog - rounds*limit // 1…Limit: the last send's place in its round
	start := now
	if r > uint64(free) {
		k := max(used-l.Limit, 0) + int(r-uint64(free)) // 1-based, ≤ used
		var exact bool
		start, exact = l.freeAt(k, now)
		e.Approximate = !exact
	}
	d := max(start.Sub(now), 0)
	if rounds > uint64((maxETA-d)/l.Hold) {
		d = maxETA
	} else {
		d += time.Duration(rounds) * l.Hold
	}
	e.Duration = max(d, l.pacedETA(backlog))
	e.At = now.Add(e.Duration)
	return e
}

// pacedETA is how long even pacing takes to let backlog sends go: PacedNow at once,
// then one each Interval (a bound the window's own ETA may exceed, never undercut).
func (l Ledger) pacedETA(backlog uint64) time.Duration {
	if l.Interval <= 0 || backlog <= uint64(max(l.PacedNow, 0)) {
		return 0
	}
	rest := backlog - uint64(max(l.PacedNow, 0))
	if rest > uint64(maxETA/l.Interval) {
		return maxETA
	}
	return time.Duration(rest) * l.Interval
}

// freeAt is when the k-th oldest used slot (1-based) frees, and whether that is
// known rather than estimated.
func (l Ledger) freeAt(k int, now time.Time) (time.Time, bool) {
	if l.FreesAt != nil && len(l.FreesAt) == l.Used {
		return l.FreesAt[k-1], true
	}
	end := now.Add(l.Hold) // a grant made by now frees by then
	if !l.NextFreeAt.IsZero() && l.Used >= l.Limit {
		// NextFreeAt is when the first slot under the cap frees: the one after
		// the Used − Limit in excess.
		a := l.Used - l.Limit + 1
		if k <= a {
			return l.NextFreeAt, true
		}
		end = later(end, l.NextFreeAt)
		return l.NextFreeAt.Add(scale(end.Sub(l.NextFreeAt), k-a, l.Used-a)), false
	}
	return now.Add(scale(l.Hold, k, l.Used)), false
}

// scale is d·num/den.
func scale(d time.Duration, num, den int) time.Duration {
	return time.Duration(float64(d) * float64(num) / float64(den))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
