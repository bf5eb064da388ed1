package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// DefaultBudgetKey is the key of the ledger in the budget bucket.
const DefaultBudgetKey = "window"

// KVBudget is the global send budget of SPEC §6: at most max import requests in any
// sliding window, summed over every replica and surviving restarts, because the
// state lives in one key of the JetStream KV bucket (ionix_budget), not in memory.
//
// # Algorithm
//
// The key holds the ledger: one stamp (Unix milliseconds) per granted send, sorted
// (window.go). Acquire reads the entry, drops the stamps that no longer hold a slot,
// grants g = min(want, max - alive), appends g stamps and writes the entry back with
// compare-and-swap on the revision it read (Create when the key is missing). A
// conflict (jetstream.ErrKeyRevisionMismatch, or ErrKeyExists from Create) means
// another replica wrote first: read again after a short jittered pause. When nothing
// is free, Acquire sleeps until the oldest blocking stamp expires, computed from the
// ledger, but at most the poll interval, so grants released by other replicas are
// seen soon. Release removes stamps this process added: Release(n) the newest ones,
// ReleaseGrant exactly those of one Acquire.
//
// A stamp holds its slot for window + margin. The margin absorbs what a ledger of
// grant times cannot see: the delay between a grant and its request reaching
// ServiceNow (the fetch, up to FetchWait when messages trickle in; handling; a token
// refresh; the network) and the clock skew between
// replicas. The guarantee: if, for every send, that delay plus the skew between the
// clocks of the replicas involved stays within the margin, then no sliding window of
// the given length (as ServiceNow's clock sees it) holds more than max requests.
// Proof sketch: take the requests of any window [a, a+W) and the one granted last, at
// g*. Every other one was granted at or after a-delay ≥ a-margin, hence within
// W+margin before g*, so it was still in the ledger when g* was granted, and g* was
// granted only if fewer than max were. The margin costs margin/(window+margin) of the
// throughput (1 % with the default of window/100).
//
// # Clock skew
//
// Stamps come from each replica's clock. A replica ahead by s writes stamps that
// expire s late for the others: conservative. A replica behind by s writes stamps
// that expire up to s early for the others, as if its requests were s late. Two
// mitigations: a grant is stamped at max(now, newest stamp in the ledger), so a
// replica behind stamps in the time of the one ahead whenever the ledger holds a
// recent stamp; and a stamp more than margin in the future is counted as made at
// now+margin (and logged), so a clock far ahead cannot block the budget for long.
// Bound: with a skew s between any two replicas and grant-to-request delays up to d,
// the cap holds exactly while s + d ≤ margin; beyond that, a window can hold, on top
// of max, only the grants that lagging replicas stamped within the last
// s + d − margin of it (≈ max·(s+d−margin)/window under a steady backlog). Keep
// clocks synchronised (NTP keeps them within milliseconds) and the margin well
// above the slowest request.
//
// # Encoding
//
// Version byte, the oldest stamp as a uvarint, then per distinct stamp the delta to
// the previous one (uvarint, low bit set when the value repeats, followed by the
// repeat count). 1,000 stamps spread over an hour take about 2 KB; grants made
// together share one value.
//
// A KVBudget is safe for concurrent use. An undecodable entry is reported as an
// error (never read as empty, which would over-grant); deleting the key resets the
// budget.
type KVBudget struct {
	kv     jetstream.KeyValue
	key    string
	max    int
	window time.Duration
	margin time.Duration
	poll   time.Duration
	now    func() time.Time
	log    zerolog.Logger
	w      slidingWindow

	warned atomic.Int64 // Unix ms of the last warning about a clock ahead

	mu   sync.Mutex
	mine stamps // live stamps this process added and has not released, ascending
}

var _ GrantBudget = (*KVBudget)(nil)

// KVBudgetOption configures a KVBudget.
type KVBudgetOption func(*KVBudget)

// WithBudgetClock sets the clock (default time.Now).
func WithBudgetClock(now func() time.Time) KVBudgetOption {
	return func(b *KVBudget) { b.now = now }
}

// WithBudgetLogger sets the logger (default zerolog.Nop()).
func WithBudgetLogger(l zerolog.Logger) KVBudgetOption {
	return func(b *KVBudget) { b.log = l }
}

// WithBudgetKey sets the key of the ledger in the bucket (default DefaultBudgetKey).
func WithBudgetKey(key string) KVBudgetOption {
	return func(b *KVBudget) { b.key = key }
}

// WithBudgetMargin sets how long past the window a stamp keeps its slot (default
// window/100): it must cover the delay from a grant to its request reaching
// ServiceNow plus the clock skew between replicas.
func WithBudgetMargin(d time.Duration) KVBudgetOption {
	return func(b *KVBudget) { b.margin = d }
}

// WithBudgetPoll sets the longest a blocked Acquire sleeps before reading the ledger
// again to notice grants released by other replicas (default window/20, between
// 20ms and 1s).
func WithBudgetPoll(d time.Duration) KVBudgetOption {
	return func(b *KVBudget) { b.poll = d }
}

// NewKVBudget returns a budget of at most limit sends in any window, kept in kv.
func NewKVBudget(kv jetstream.KeyValue, limit int, window time.Duration, opts ...KVBudgetOption) (*KVBudget, error) {
	if kv == nil {
		return nil, errors.New("budget: no key-value bucket")
	}
	if limit < 1 {
		return nil, fmt.Errorf("budget: limit %d, want at least 1", limit)
	}
	if window < time.Millisecond {
		return nil, fmt.Errorf("budget: window %s, want at least 1ms", window)
	}
	b := &KVBudget{
		kv: kv, key: DefaultBudgetKey, max: limit, window: window, margin: -1,
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
	span := (window + b.margin + time.Millisecond - 1).Milliseconds() + 1
	b.w = slidingWindow{max: limit, span: span, future: max(b.margin.Milliseconds(), 1)}
	return b, nil
}

// Acquire blocks until at least one send is granted and returns how many, at most
// want.
func (b *KVBudget) Acquire(ctx context.Context, want int) (int, error) {
	g, err := b.AcquireGrant(ctx, want)
	return g.N, err
}

// storeTimeout bounds one write of the ledger.
const storeTimeout = 5 * time.Second

// AcquireGrant is Acquire returning the grant, for ReleaseGrant.
func (b *KVBudget) AcquireGrant(ctx context.Context, want int) (Grant, error) {
	if want <= 0 {
		return Grant{}, ctx.Err()
	}
	for conflicts := 0; ; {
		if err := ctx.Err(); err != nil {
			return Grant{}, err
		}
		s, rev, err := b.load(ctx)
		if err != nil {
			return Grant{}, err
		}
		now := b.now().UnixMilli()
		s = b.live(s, now)
		out, n, at := b.w.grant(s, now, want)
		if n == 0 {
			wait := time.Duration(b.w.nextFree(s, now)-now) * time.Millisecond
			if !sleepCtx(ctx, min(max(wait, time.Millisecond), b.poll)) {
				return Grant{}, ctx.Err()
			}
			continue
		}
		// The write is not cut short by the caller's cancellation: a write the
		// server applied but we gave up on would hold its grants for a window.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		err = b.store(wctx, out, rev)
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
		// Expire here too: under a backlog every grant is spent and Release (which
		// also expires) never runs.
		b.mine = b.w.expire(b.mine, b.now().UnixMilli())
		for range n {
			b.mine = insertSorted(b.mine, at)
		}
		b.mu.Unlock()
		return Grant{N: n, At: time.UnixMilli(at)}, nil
	}
}

// Release gives back n unused grants: the newest stamps this process added that
// are still in the ledger. When the unused grants are older than the newest one
// (a worker of an earlier fetch giving back while a later fetch holds grants), the
// stamp removed is newer than the one left, which then expires early by the
// difference; the margin must cover that too. ReleaseGrant is exact.
func (b *KVBudget) Release(ctx context.Context, n int) error {
	return b.release(ctx, n, nil)
}

// ReleaseGrant gives back n unused sends of g, exactly its stamps. Stamps that have
// already expired are not given back twice.
func (b *KVBudget) ReleaseGrant(ctx context.Context, g Grant, n int) error {
	at := g.At.UnixMilli()
	return b.release(ctx, min(n, g.N), &at)
}

func (b *KVBudget) release(ctx context.Context, n int, at *int64) error {
	if n <= 0 {
		return nil
	}
	for conflicts := 0; ; {
		s, rev, err := b.load(ctx)
		if err != nil {
			return err
		}
		now := b.now().UnixMilli()
		s = b.live(s, now)
		picked := b.pick(s, now, n, at)
		if len(picked) == 0 {
			return nil
		}
		out := s
		for _, p := range picked {
			out, _ = remove(out, p, 1)
		}
		err = b.store(ctx, out, rev)
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
			b.mine, _ = remove(b.mine, p, 1)
		}
		b.mu.Unlock()
		return nil
	}
}

// pick chooses up to n of this process's stamps that are in the live ledger s:
// newest first, or only those equal to *at.
func (b *KVBudget) pick(s stamps, now int64, n int, at *int64) []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mine = b.w.expire(b.mine, now)
	var picked []int64
	avail := map[int64]int{}
	for _, v := range s {
		avail[v]++
	}
	for i := len(b.mine) - 1; i >= 0 && len(picked) < n; i-- {
		v := b.mine[i]
		if (at != nil && v != *at) || avail[v] == 0 {
			continue
		}
		avail[v]--
		picked = append(picked, v)
	}
	return picked
}

// live drops expired stamps and clamps future ones, logging a clock ahead.
func (b *KVBudget) live(s stamps, now int64) stamps {
	if last := b.warned.Load(); len(s) > 0 && s[len(s)-1] > now+b.w.future && now-last >= 60_000 && b.warned.CompareAndSwap(last, now) {
		b.log.Warn().Time("newest_stamp", time.UnixMilli(s[len(s)-1])).Time("now", time.UnixMilli(now)).
			Dur("margin", b.margin).Msg("budget ledger holds stamps beyond the margin in the future: a replica's clock is ahead; counting them as made now+margin")
	}
	return b.w.live(s, now)
}

// BudgetState is the budget as seen now, for status and metrics.
type BudgetState struct {
	Used          int       // grants still holding a slot (those of the last window + margin)
	Limit         int       // max sends per window
	WindowSeconds float64   // the window
	NextFreeAt    time.Time // when the next slot frees; zero when one is free now
	At            time.Time // when the state was read
	// Hold is how long one grant holds its slot: the window plus the margin.
	Hold time.Duration
	// FreesAt is when each used slot frees, oldest first.
	FreesAt []time.Time
}

// Remaining is how many sends could be granted now.
func (s BudgetState) Remaining() int { return max(s.Limit-s.Used, 0) }

// MarshalJSON writes {"used","limit","window_seconds","next_free_at"} with
// next_free_at in RFC 3339, the time of reading when a slot is free now.
func (s BudgetState) MarshalJSON() ([]byte, error) {
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
func (b *KVBudget) State(ctx context.Context) (BudgetState, error) {
	s, _, err := b.load(ctx)
	if err != nil {
		return BudgetState{}, err
	}
	t := b.now()
	now := t.UnixMilli()
	s = b.w.live(s, now)
	st := BudgetState{Used: len(s), Limit: b.max, WindowSeconds: b.window.Seconds(), At: t,
		Hold: time.Duration(b.w.span) * time.Millisecond, FreesAt: make([]time.Time, len(s))}
	for i, stamp := range s {
		st.FreesAt[i] = time.UnixMilli(stamp + b.w.span)
	}
	if next := b.w.nextFree(s, now); next > now {
		st.NextFreeAt = time.UnixMilli(next)
	}
	return st, nil
}

// load reads the ledger and its revision (0 when the key does not exist).
func (b *KVBudget) load(ctx context.Context) (stamps, uint64, error) {
	e, err := b.kv.Get(ctx, b.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("budget: read %s: %w", b.key, err)
	}
	s, err := decodeStamps(e.Value(), max(16*b.max, 1<<16))
	if err != nil {
		return nil, 0, fmt.Errorf("budget: key %s revision %d: %w (delete the key to reset the budget)", b.key, e.Revision(), err)
	}
	return s, e.Revision(), nil
}

// store writes the ledger if the key is still at rev (0: if it does not exist).
func (b *KVBudget) store(ctx context.Context, s stamps, rev uint64) error {
	var err error
	if rev == 0 {
		_, err = b.kv.Create(ctx, b.key, encodeStamps(s))
	} else {
		_, err = b.kv.Update(ctx, b.key, encodeStamps(s), rev)
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

func insertSorted(s stamps, v int64) stamps {
	i, _ := slices.BinarySearch(s, v+1)
	return slices.Insert(s, i, v)
}
