package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultKey is the key of the ledger in the budget bucket.
const DefaultKey = "window"

// KV is the global send budget of SPEC §6: at most max import requests in any
// sliding window, summed over every replica and surviving restarts, because the
// state lives in one key of the JetStream KV bucket (ionix_budget), not in memory.
//
// # Algorithm
//
// The key holds the ledger: how many sends were granted in each slice of time, a
// slice being window/1,000 rounded down to a power of two of milliseconds
// (WithSlice; powers of two, so that the slices of replicas configured with
// other windows nest), only the slices that can still hold a
// slot (window.go). Acquire reads the entry, drops the slices that no longer hold a
// slot, grants g = min(want, max − alive) in one block, adds g to the current
// slice and writes the entry back with compare-and-swap on the revision it read
// (Create when the key is missing). A conflict (jetstream.ErrKeyRevisionMismatch,
// or ErrKeyExists from Create) means another replica wrote first: read again after
// a short jittered pause. When nothing is free, Acquire sleeps until enough of the
// oldest slices expire, computed from the ledger, but at most the poll interval,
// so grants released by other replicas are seen soon. Release takes back grants
// this process made and did not spend, each from the slice it was counted in:
// ReleaseGrant exactly those of one block, Release(n) the newest ones. The ledger
// holds at most (window + 2·margin)/slice + 2 slices, so a grant costs the same
// whatever the cap (about 1 KB of entry at 1,000 sends an hour, 5 KB at 10^8).
//
// A grant holds its slot for window + margin. The margin absorbs what a ledger of
// grant times cannot see: the delay between a grant and its request reaching
// ServiceNow (the fetch, up to FetchWait when messages trickle in; the wait in the
// consumer's reserve, which Fresh bounds to half the margin; handling; a token
// refresh; the network) and the clock skew between replicas. The guarantee: if,
// for every send, that delay plus the skew between the clocks of the replicas
// involved stays within the margin, then no sliding window of the given length (as
// ServiceNow's clock sees it) holds more than max requests. Proof sketch: take the
// requests of any window [a, a+W) and the one granted last, at g*. Every other one
// was granted at or after a−delay ≥ a−margin, hence within W+margin before g*. Its
// slice holds its slot until the slice's end + W + margin, which is at or after
// its own grant time + W + margin, so it was still counted when g* was granted,
// and g* was granted only if fewer than max were. Counting a grant to its slice's
// end costs it up to one slice (0.1 % of the window) of extra hold; the margin
// costs margin/(window+margin) of the throughput (1 % with the default of
// window/100).
//
// # Clock skew
//
// Slices come from each replica's clock. A replica ahead by s counts grants in
// slices that expire s late for the others: conservative. A replica behind by s
// counts grants in slices that expire up to s early for the others, as if its
// requests were s late. Two mitigations: a grant is counted in the later of the
// current slice and the newest slice in the ledger, so a replica behind counts in
// the time of the one ahead whenever the ledger holds a recent grant; and a slice
// more than margin in the future is counted as the slice of now+margin (and
// logged), so a clock far ahead cannot block the budget for long. Such a fold moves
// grants out of the slices their replicas counted them in, so the entry counts its
// folds, and a replica that sees the count change forgets its own grants: it never
// releases them (they keep their slots until they expire), since what is left in
// their old slices may be another replica's. Bound: with a
// skew s between any two replicas and grant-to-request delays up to d, the cap
// holds exactly while s + d ≤ margin; beyond that, a window can hold, on top of
// max, only the grants that lagging replicas counted within the last
// s + d − margin of it (≈ max·(s+d−margin)/window under a steady backlog, the
// cap × (skew − margin) of the documentation). Keep clocks synchronised (NTP keeps
// them within milliseconds) and the margin well above the slowest request.
//
// # Encoding
//
// Version byte (2), the slice length in ms, the fold count, the oldest non-empty
// slice's index,
// then per non-empty slice the gap to the previous one and its count, as uvarints
// (window.go). A replica configured with another slice length reads the entry
// converted conservatively (each count moved to the slice of the latest time its
// grants may have been made), and so is an entry of version 1, which held one
// stamp per grant: an upgrade with a live entry does not over-grant.
//
// A KV is safe for concurrent use. An undecodable entry is reported as an
// error (never read as empty, which would over-grant); deleting the key resets the
// budget.
type KV struct {
	kv     jetstream.KeyValue
	key    string
	max    int
	window time.Duration
	margin time.Duration
	slice  time.Duration
	poll   time.Duration
	now    func() time.Time
	log    zerolog.Logger
	w      slidingWindow
	// pace spreads ordinary grants at the cap's rate (WithPacing); reserve is
	// how many of the window's slots only urgent grants may take (WithReserve).
	pace    pacing
	reserve int64

	warned atomic.Int64 // Unix ms of the last warning about a clock ahead
	// onHold, when set, is called each time an acquire sleeps because the window or
	// the pace grants nothing now (OnHold).
	onHold atomic.Pointer[func()]
	// urgent is the mark of urgent acquires that wait (urgent.go).
	urgent urgentMark

	mu   sync.Mutex
	mine ledger // live grants this process made and has not released, per slice
	// folds is the entry's fold count when mine was last valid: once a reader has
	// folded future slices (live), grants may no longer be in the slices mine
	// names, and releasing from those slices could free another replica's grants;
	// mine is then forgotten (its grants keep their slots until they expire).
	folds uint64
}

var _ Granter = (*KV)(nil)

// Option configures a KV.
type Option func(*KV)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(b *KV) { b.now = now }
}

// WithLogger sets the logger (default zerolog.Nop()).
func WithLogger(l zerolog.Logger) Option {
	return func(b *KV) { b.log = l }
}

// WithKey sets the key of the ledger in the bucket (default DefaultKey).
func WithKey(key string) Option {
	return func(b *KV) { b.key = key }
}

// WithMargin sets how long past the window a grant keeps its slot (default
// window/100): it must cover the delay from a grant to its request reaching
// ServiceNow plus the clock skew between replicas.
func WithMargin(d time.Duration) Option {
	return func(b *KV) { b.margin = d }
}

// WithPoll sets the longest a blocked Acquire sleeps before reading the ledger
// again to notice grants released by other replicas (default window/20, between
// 20ms and 1s).
func WithPoll(d time.Duration) Option {
	return func(b *KV) { b.poll = d }
}

// WithPacing spreads grants evenly at the cap's rate, one every window/limit, with
// burst grants at once after enough idleness (SPEC §10, cap.pacing: even). Without
// it (or with burst ≥ limit) grants go as fast as the window allows: the whole cap
// in a burst. Urgent grants are not paced (their sends still pace the others).
func WithPacing(burst int) Option {
	return func(b *KV) { b.pace.burst = int64(burst) }
}

// WithReserve holds n of the window's slots for urgent grants (AcquireUrgentGrant):
// ordinary ones stop at limit − n, so that a High item finds a slot even when a
// backlog has spent the rest of the window. At most limit − 1.
func WithReserve(n int) Option {
	return func(b *KV) { b.reserve = int64(n) }
}

// maxWindow bounds the window, far above any real one, so that the window plus its
// margin cannot overflow.
const maxWindow = 100 * 365 * 24 * time.Hour

// WithSlice sets the resolution of the ledger: grants are counted per slice
// of this length (default window/1,000, at least 1ms; rounded down to whole ms).
// A grant holds its slot up to one slice longer than window + margin; the entry
// and the cost of a grant grow with (window + 2·margin)/slice.
func WithSlice(d time.Duration) Option {
	return func(b *KV) { b.slice = d }
}

// NewKV returns a budget of at most limit sends in any window, kept in kv.
func NewKV(kv jetstream.KeyValue, limit int, window time.Duration, opts ...Option) (*KV, error) {
	if kv == nil {
		return nil, errors.New("budget: no key-value bucket")
	}
	if limit < 1 {
		return nil, fmt.Errorf("budget: limit %d, want at least 1", limit)
	}
	if window < time.Millisecond || window > maxWindow {
		return nil, fmt.Errorf("budget: window %s, want at least 1ms and at most %s", window, maxWindow)
	}
	b := &KV{
		kv: kv, key: DefaultKey, max: limit, window: window, margin: -1,
		now: time.Now, log: zerolog.Nop(),
	}
	for _, o := range opts {
		o(b)
	}
	if !validKey(b.key) {
		return nil, fmt.Errorf("budget: invalid key %q", b.key)
	}
	if b.margin < 0 {
		b.margin = window / 100
	}
	if b.poll <= 0 {
		b.poll = min(max(window/20, 20*time.Millisecond), time.Second)
	}
	if b.slice <= 0 {
		b.slice = window / 1000
	}
	// A power of two of milliseconds, so that the slices of replicas configured with
	// other windows (a rolling change of cap.window) nest: converting an entry from
	// another replica's slices moves a grant at most once, never further each time.
	q := min(max(b.slice.Milliseconds(), 1), maxSliceMs)
	b.slice = time.Duration(int64(1)<<(bits.Len64(uint64(q))-1)) * time.Millisecond
	if b.pace.burst > 0 {
		b.pace.interval = float64(window.Milliseconds()) / float64(limit)
	}
	b.reserve = min(max(b.reserve, 0), int64(limit)-1)
	span := (window + b.margin + time.Millisecond - 1).Milliseconds() + 1
	b.w = slidingWindow{max: int64(limit), span: span, q: b.slice.Milliseconds(), future: max(b.margin.Milliseconds(), 1)}
	return b, nil
}

// Acquire blocks until at least one send is granted and returns how many, at most
// want.
func (b *KV) Acquire(ctx context.Context, want int) (int, error) {
	g, err := b.AcquireGrant(ctx, want)
	return g.N, err
}

// storeTimeout bounds one write of the ledger.
const storeTimeout = 5 * time.Second

// AcquireGrant is Acquire returning the grant, for ReleaseGrant: N sends counted in
// the slice that holds At.
func (b *KV) AcquireGrant(ctx context.Context, want int) (Grant, error) {
	return b.acquire(ctx, want, false)
}

// AcquireUrgentGrant is AcquireGrant for a High item (SPEC §10): it may take the
// slots WithReserve holds, and is not paced. The cap holds all the same.
func (b *KV) AcquireUrgentGrant(ctx context.Context, want int) (Grant, error) {
	return b.acquire(ctx, want, true)
}

// rule is what a grant may take at now from the live ledger l: the window's slots up
// to limit, and at most paced (for an ordinary grant, what pacing allows); next is
// when one more may be granted if none can now.
func (b *KV) rule(l ledger, now int64, urgent bool) (paced, limit, next int64) {
	limit, paced, pacedNext := b.w.max, int64(math.MaxInt64), now
	if !urgent {
		limit -= b.reserve
		paced, pacedNext = b.pace.allowed(l, b.w.q, now)
	}
	return paced, limit, max(b.w.nextFreeWithin(l, now, limit), pacedNext)
}

// OnHold has f called each time an acquire of this budget sleeps because the window
// or the pace grants nothing now: the cap, not the caller, sets the pace. While the
// hold lasts, it is called again at least every poll interval.
func (b *KV) OnHold(f func()) { b.onHold.Store(&f) }

func (b *KV) acquire(ctx context.Context, want int, urgent bool) (Grant, error) {
	if want <= 0 {
		return Grant{}, ctx.Err()
	}
	marked := false // an urgent acquire that waits, counted until it returns
	defer func() {
		if marked {
			b.unmarkUrgent(ctx)
		}
	}()
	for conflicts := 0; ; {
		if err := ctx.Err(); err != nil {
			return Grant{}, err
		}
		l, folds, rev, err := b.load(ctx)
		if err != nil {
			return Grant{}, err
		}
		now := b.now().UnixMilli()
		l, folds = b.live(l, now, folds)
		// Where the window is nearly spent, an ordinary grant could take the slot an
		// urgent acquire waits for.
		if !urgent && l.total()+int64(want) >= int64(b.max)-b.reserve && b.urgentWaits(ctx) {
			if !b.hold(ctx, b.poll) {
				return Grant{}, ctx.Err()
			}
			continue
		}
		paced, limit, next := b.rule(l, now, urgent)
		out, n, k := b.w.grantWithin(l, now, min(int64(want), paced), limit)
		if n == 0 {
			if urgent {
				b.markUrgent(ctx, !marked)
				marked = true
			}
			if !b.hold(ctx, time.Duration(next-now)*time.Millisecond) {
				return Grant{}, ctx.Err()
			}
			continue
		}
		// The write is not cut short by the caller's cancellation: a write the
		// server applied but we gave up on would hold its grants for a window.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		err = b.store(wctx, out, folds, rev)
		cancel()
		if isConflict(err) {
			conflicts++
			if !sleepCtx(ctx, jitter(conflicts)) {
				return Grant{}, ctx.Err()
			}
			continue
		}
		if err != nil {
			return Grant{}, err
		}
		b.mu.Lock()
		b.forgetIfFolded(folds)
		// Expire here too: under a backlog every grant is spent and Release (which
		// also expires) never runs.
		b.mine = b.w.expire(b.mine, b.now().UnixMilli())
		b.mine = b.mine.put(k, int64(n))
		b.mu.Unlock()
		paced, limit, _ = b.rule(out, now, false)
		tight := paced < 1 || out.total() >= limit
		return Grant{N: n, At: time.UnixMilli(max(now, k*b.w.q)), Tight: tight}, nil
	}
}

// Fresh reports whether a send of g started now leaves at least half the margin for
// the request itself to reach ServiceNow (see the proof above: grant-to-request delay
// plus clock skew must stay within the margin).
func (b *KV) Fresh(g Grant) bool {
	return b.now().Sub(g.At) < b.margin/2
}

// Release gives back n unused grants: the newest this process made that are still
// in the ledger, each from its slice. When the unused grants are older than the
// newest one (a worker of an earlier fetch giving back while a later fetch holds
// grants), the grant removed is newer than the one left, which then expires early
// by the difference; the margin must cover that too. ReleaseGrant is exact.
func (b *KV) Release(ctx context.Context, n int) error {
	return b.release(ctx, n, nil)
}

// ReleaseGrant gives back n unused sends of g, exactly from the slice they were
// counted in. Grants that have already expired are not given back twice.
func (b *KV) ReleaseGrant(ctx context.Context, g Grant, n int) error {
	k := b.w.slice(g.At.UnixMilli())
	return b.release(ctx, min(n, g.N), &k)
}

func (b *KV) release(ctx context.Context, n int, slice *int64) error {
	if n <= 0 {
		return nil
	}
	for conflicts := 0; ; {
		l, folds, rev, err := b.load(ctx)
		if err != nil {
			return err
		}
		now := b.now().UnixMilli()
		l, folds = b.live(l, now, folds)
		picked := b.pick(l, now, int64(n), slice, folds)
		if len(picked) == 0 {
			return nil
		}
		for _, p := range picked {
			l, _ = l.take(p.k, p.n)
		}
		err = b.store(ctx, l, folds, rev)
		if isConflict(err) {
			conflicts++
			if !sleepCtx(ctx, jitter(conflicts)) {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			return err
		}
		b.mu.Lock()
		for _, p := range picked {
			b.mine, _ = b.mine.take(p.k, p.n)
		}
		b.mu.Unlock()
		return nil
	}
}

// pick chooses up to n of this process's grants that are in the live ledger l, as
// counts per slice: newest first, or only those of *slice.
// forgetIfFolded forgets this process's grants when the entry was folded since they
// were counted (see KV.folds). b.mu must be held.
func (b *KV) forgetIfFolded(folds uint64) {
	if folds != b.folds {
		b.mine, b.folds = nil, folds
	}
}

func (b *KV) pick(l ledger, now, n int64, slice *int64, folds uint64) []slot {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forgetIfFolded(folds)
	b.mine = b.w.expire(b.mine, now)
	var picked []slot
	for i := len(b.mine) - 1; i >= 0 && n > 0; i-- {
		s := b.mine[i]
		if slice != nil && s.k != *slice {
			continue
		}
		if c := min(n, s.n, l.count(s.k)); c > 0 {
			picked = append(picked, slot{s.k, c})
			n -= c
		}
	}
	return picked
}

// live drops expired slices and clamps future ones, logging a clock ahead.
func (b *KV) live(l ledger, now int64, folds uint64) (ledger, uint64) {
	if last := b.warned.Load(); len(l) > 0 && l[len(l)-1].k > b.w.slice(now+b.w.future) && now-last >= 60_000 && b.warned.CompareAndSwap(last, now) {
		b.log.Warn().Time("newest_slice", time.UnixMilli(l[len(l)-1].k*b.w.q)).Time("now", time.UnixMilli(now)).
			Dur("margin", b.margin).Msg("budget ledger holds grants beyond the margin in the future: a replica's clock is ahead; counting them as made now+margin")
	}
	l, folded := b.w.live(l, now)
	if folded {
		folds++ // recorded in the entry: every replica forgets its own grants
	}
	return l, folds
}

// State is the budget as seen now, for status and metrics.
type State struct {
	Used          int       // grants still holding a slot (those of the last window + margin)
	Limit         int       // max sends per window
	WindowSeconds float64   // the window
	NextFreeAt    time.Time // when the next slot frees; zero when one is free now
	At            time.Time // when the state was read
	// Hold is the longest one grant holds its slot: the window plus the margin
	// plus one slice of the ledger.
	Hold time.Duration
	// FreesAt is when each used slot frees, oldest first; nil when more than
	// MaxFreesAt slots are used (the caller then estimates from NextFreeAt).
	FreesAt []time.Time
	// Interval is the time between two paced sends (window/limit), zero without
	// pacing; PacedNow is how many sends pacing lets go at once now.
	Interval time.Duration
	PacedNow int
	// Reserved is how many of Limit only urgent grants may take (WithReserve).
	Reserved int
}

// MaxFreesAt bounds State.FreesAt, one time per used slot, so that reading
// the state of a budget with a cap of 10^8 does not allocate gigabytes.
const MaxFreesAt = 1 << 16

// Remaining is how many sends could be granted now.
func (s State) Remaining() int { return max(s.Limit-s.Used, 0) }

// MarshalJSON writes {"used","limit","window_seconds","next_free_at"} with
// next_free_at in RFC 3339, the time of reading when a slot is free now.
func (s State) MarshalJSON() ([]byte, error) {
	next := s.NextFreeAt
	if next.IsZero() {
		next = s.At
	}
	return json.Marshal(struct {
		Used          int     `json:"used"`
		Limit         int     `json:"limit"`
		WindowSeconds float64 `json:"window_seconds"`
		NextFreeAt    string  `json:"next_free_at"`
	}{s.Used, s.Limit, s.WindowSeconds, next.UTC().Format(time.RFC3339Nano)})
}

// State reads the budget without changing it.
func (b *KV) State(ctx context.Context) (State, error) {
	l, _, _, err := b.load(ctx)
	if err != nil {
		return State{}, err
	}
	t := b.now()
	now := t.UnixMilli()
	l, _ = b.w.live(l, now)
	used := l.total()
	st := State{Used: int(used), Limit: b.max, Reserved: int(b.reserve), WindowSeconds: b.window.Seconds(), At: t,
		Hold: time.Duration(b.w.span+b.w.q-1) * time.Millisecond}
	if used <= MaxFreesAt {
		st.FreesAt = make([]time.Time, 0, used)
		for _, s := range l {
			at := time.UnixMilli(b.w.end(s.k))
			for range s.n {
				st.FreesAt = append(st.FreesAt, at)
			}
		}
	}
	paced, _, next := b.rule(l, now, false)
	if next > now {
		st.NextFreeAt = time.UnixMilli(next)
	}
	if !b.pace.off() {
		st.Interval = time.Duration(b.pace.interval * float64(time.Millisecond))
		st.PacedNow = int(paced)
	}
	return st, nil
}

// load reads the ledger and its revision (0 when the key does not exist).
func (b *KV) load(ctx context.Context) (l ledger, folds, rev uint64, err error) {
	e, err := b.kv.Get(ctx, b.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("budget: read %s: %w", b.key, err)
	}
	l, folds, err = decodeLedger(e.Value(), b.w.q, max(16*int64(b.max), 1<<16))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("budget: key %s revision %d: %w (delete the key to reset the budget)", b.key, e.Revision(), err)
	}
	return l, folds, e.Revision(), nil
}

// store writes the ledger with compare-and-swap on rev (Create when rev is 0).
func (b *KV) store(ctx context.Context, l ledger, folds, rev uint64) error {
	var err error
	if rev == 0 {
		_, err = b.kv.Create(ctx, b.key, encodeLedger(l, b.w.q, folds))
	} else {
		_, err = b.kv.Update(ctx, b.key, encodeLedger(l, b.w.q, folds), rev)
	}
	if err != nil && !isConflict(err) {
		return fmt.Errorf("budget: write %s: %w", b.key, err)
	}
	return err
}

// isConflict reports a lost compare-and-swap: Update's revision mismatch, or Create
// finding the key there (ErrKeyExists is only trusted for Create).
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// jitter is the pause after the n-th lost compare-and-swap: random, growing from
// about 1ms up to 50ms.
func jitter(n int) time.Duration {
	ceil := min(time.Millisecond<<min(n, 6), 50*time.Millisecond)
	return ceil/2 + rand.N(ceil/2+1)
}

// sleepCtx sleeps d, reporting false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// validKey reports whether key is a valid KV key: letters, digits and -/_=. with
// no dot at either end.
func validKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-/_=.", r)) {
			return false
		}
	}
	return true
}
