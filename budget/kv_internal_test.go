package budget

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
)

// TestKVBudgetForgetsExpiredGrants: under a backlog every grant is spent and none is
// released; the process's own record of its grants must still expire with the
// window, or it grows by one slice per send for as long as the process runs.
func TestKVBudgetForgetsExpiredGrants(t *testing.T) {
	js := natstest.Connect(t, natstest.Start(t).URL())
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "budget"})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := NewKV(kv, 10, time.Second, WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if _, err := b.AcquireGrant(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(200 * time.Millisecond)
	}
	b.mu.Lock()
	held := len(b.mine)
	b.mu.Unlock()
	if held > 10 {
		t.Errorf("the budget remembers %d slices of its grants after 200 sends at 5 per 1s window; want at most the 10 a window can hold", held)
	}
}

// TestKVBudgetReadsVersion1Entry: a budget upgraded while the bucket holds a live
// entry of version 1 (one stamp per grant) counts those grants, each until at
// least its stamp's expiry, and so grants no more than the old budget would have.
func TestKVBudgetReadsVersion1Entry(t *testing.T) {
	js := natstest.Connect(t, natstest.Start(t).URL())
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "budget"})
	if err != nil {
		t.Fatal(err)
	}
	const window, margin = 10 * time.Second, 100 * time.Millisecond
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := clock.UnixMilli()
	// 6 grants stamped by the old budget, the last 3 at the last ms of a slice.
	old := []int64{now - 9_000, now - 9_000, now - 5_003, now - 1, now - 1, now - 1}
	if _, err := kv.Put(ctx, DefaultKey, encodeStampsV1(old)); err != nil {
		t.Fatal(err)
	}
	b, err := NewKV(kv, 8, window, WithMargin(margin), WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	span := (window + margin + time.Millisecond).Milliseconds()
	if st.Used != 6 || !st.NextFreeAt.IsZero() {
		t.Fatalf("state = %+v, want the 6 stamps of the old entry used", st)
	}
	for i, s := range old {
		if got := st.FreesAt[i].UnixMilli(); got < s+span {
			t.Fatalf("stamp %d frees at %d, before its old expiry %d", s, got, s+span)
		}
	}
	if n, err := b.Acquire(ctx, 5); err != nil || n != 2 {
		t.Fatalf("Acquire(5) = %d, %v; want the 2 the old entry leaves", n, err)
	}
	// Just before the newest old stamps expire, only the older 3 have freed.
	clock = time.UnixMilli(now - 1 + span - 1)
	if n, err := b.Acquire(ctx, 5); err != nil || n != 3 {
		t.Fatalf("Acquire(5) 1ms before the newest old stamps expire = %d, %v; want 3", n, err)
	}
	e, err := kv.Get(ctx, DefaultKey)
	if err != nil {
		t.Fatal(err)
	}
	if e.Value()[0] != ledgerVersion {
		t.Fatalf("the entry was written back in version %d, want %d", e.Value()[0], ledgerVersion)
	}
}

// memKV is an in-memory key-value bucket with compare-and-swap: enough of
// jetstream.KeyValue for KV, so that the property test below runs thousands
// of operations in well under a second.
type memKV struct {
	jetstream.KeyValue
	mu    sync.Mutex
	value map[string][]byte
	rev   map[string]uint64
	last  uint64
}

func newMemKV() *memKV { return &memKV{value: map[string][]byte{}, rev: map[string]uint64{}} }

type memEntry struct {
	jetstream.KeyValueEntry
	value []byte
	rev   uint64
}

func (e memEntry) Value() []byte    { return e.value }
func (e memEntry) Revision() uint64 { return e.rev }

func (m *memKV) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.value[key]
	if !ok {
		return nil, jetstream.ErrKeyNotFound
	}
	return memEntry{value: slices.Clone(v), rev: m.rev[key]}, nil
}

func (m *memKV) Put(_ context.Context, key string, value []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.write(key, value), nil
}

func (m *memKV) Create(_ context.Context, key string, value []byte, _ ...jetstream.KVCreateOpt) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.value[key]; ok {
		return 0, jetstream.ErrKeyExists
	}
	return m.write(key, value), nil
}

func (m *memKV) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rev[key] != rev {
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	return m.write(key, value), nil
}

func (m *memKV) write(key string, value []byte) uint64 {
	m.last++
	m.value[key], m.rev[key] = slices.Clone(value), m.last
	return m.last
}

// simGrant is one grant in the property test: when it was made, by whom, and how
// many of its sends were not given back.
type simGrant struct {
	replica int
	g       Grant
	at      int64 // the clock when it was granted
	count   int
}

// TestKVBudgetReplicasAgainstBruteForce is the property test of the budget as
// deployed: several replicas, each its own KV, share one bucket and one clock
// and make random grants and releases (ReleaseGrant of part of a random earlier
// grant, Release(n)) at random times, some starting over a live entry of version 1.
// After every operation the used count is checked against a brute-force count of
// the net grants, and at the end no window of length window+margin holds more than
// max net grants at the times they were granted.
func TestKVBudgetReplicasAgainstBruteForce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      int
		window   time.Duration
		margin   time.Duration
		slices   []time.Duration // per replica; 0: the default
		maxStep  time.Duration
		oldEntry bool // start over a live version 1 entry
	}{
		{"3 replicas, cap 5 per second", 5, time.Second, 10 * time.Millisecond, []time.Duration{0, 0, 0}, 150 * time.Millisecond, false},
		{"3 replicas, coarse slices", 20, 10 * time.Second, 100 * time.Millisecond, []time.Duration{time.Second / 3, time.Second / 3, time.Second / 3}, 700 * time.Millisecond, false},
		{"2 replicas, cap 1000 per hour, from a version 1 entry", 1000, time.Hour, 36 * time.Second, []time.Duration{0, 0}, 20 * time.Second, true},
		{"replicas with different slice lengths", 12, 2 * time.Second, 20 * time.Millisecond, []time.Duration{time.Millisecond, 7 * time.Millisecond, 50 * time.Millisecond}, 200 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(8) {
				runReplicas(t, seed, tc.max, tc.window, tc.margin, tc.slices, tc.maxStep, tc.oldEntry)
			}
		})
	}
}

func runReplicas(t *testing.T, seed uint64, maxN int, window, margin time.Duration, sl []time.Duration, maxStep time.Duration, oldEntry bool) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 0xb0d9e7))
	kv := newMemKV()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(time.Second))))
	now := func() time.Time { return clock }
	span := (window + margin + time.Millisecond).Milliseconds()
	var grants []*simGrant
	if oldEntry {
		old := make([]int64, 1+rng.IntN(maxN))
		for i := range old {
			old[i] = clock.UnixMilli() - rng.Int64N(span)
		}
		slices.Sort(old)
		if _, err := kv.Put(ctx, DefaultKey, encodeStampsV1(old)); err != nil {
			t.Fatal(err)
		}
		for _, s := range old {
			grants = append(grants, &simGrant{replica: -1, at: s, count: 1})
		}
	}
	budgets := make([]*KV, len(sl))
	for i := range budgets {
		var err error
		budgets[i], err = NewKV(kv, maxN, window, WithClock(now), WithMargin(margin), WithSlice(sl[i]))
		if err != nil {
			t.Fatal(err)
		}
	}
	uniform := !oldEntry && !slices.ContainsFunc(sl, func(d time.Duration) bool { return d != sl[0] })
	q := budgets[0].w.q
	for op := range 1500 {
		clock = clock.Add(time.Duration(rng.Int64N(int64(maxStep) + 1)))
		r := rng.IntN(len(budgets))
		b := budgets[r]
		fail := func(format string, args ...any) {
			t.Fatalf("seed %d op %d replica %d: %s", seed, op, r, fmt.Sprintf(format, args...))
		}
		used := func() int {
			st, err := b.State(ctx)
			if err != nil {
				fail("state: %v", err)
			}
			return st.Used
		}
		before := used()
		ms := clock.UnixMilli()
		exact, bySlice := 0, 0
		for _, g := range grants {
			if ms-g.at < span {
				exact += g.count
			}
			if g.replica >= 0 && ms < (g.at/q+1)*q-1+span {
				bySlice += g.count
			}
		}
		if before > maxN {
			fail("%d used, above the cap %d", before, maxN)
		}
		if before < exact {
			fail("%d used, fewer than the %d net grants of the last window+margin", before, exact)
		}
		if uniform && before != bySlice {
			fail("%d used, brute force over slices %d", before, bySlice)
		}
		mine := func() []*simGrant {
			var m []*simGrant
			for _, g := range grants {
				if g.replica == r && g.count > 0 {
					m = append(m, g)
				}
			}
			return m
		}()
		switch k := rng.IntN(4); {
		case k <= 1 || len(mine) == 0:
			if before >= maxN {
				continue // Acquire would wait for the clock, which only the test moves
			}
			want := 1 + rng.IntN(4)
			g, err := b.AcquireGrant(ctx, want)
			if err != nil {
				fail("acquire: %v", err)
			}
			if g.N != min(want, maxN-before) {
				fail("granted %d of %d with %d of %d used", g.N, want, before, maxN)
			}
			grants = append(grants, &simGrant{replica: r, g: g, at: ms, count: g.N})
		case k == 2:
			gr := mine[rng.IntN(len(mine))]
			n := 1 + rng.IntN(gr.count)
			if err := b.ReleaseGrant(ctx, gr.g, n); err != nil {
				fail("release grant: %v", err)
			}
			back := before - used()
			if alive := ms < (gr.g.At.UnixMilli()/q+1)*q-1+span; uniform && alive && back != n {
				fail("ReleaseGrant of %d gave back %d", n, back)
			}
			if back > n {
				fail("ReleaseGrant of %d gave back %d", n, back)
			}
			gr.count -= back
		default:
			n := 1 + rng.IntN(4)
			if err := b.Release(ctx, n); err != nil {
				fail("release: %v", err)
			}
			back := before - used()
			if back > n {
				fail("Release(%d) gave back %d", n, back)
			}
			// The newest of this replica's grants, by slice, lost them.
			slices.SortStableFunc(mine, func(a, b *simGrant) int { return int(b.at - a.at) })
			for _, g := range mine {
				c := min(back, g.count)
				g.count -= c
				back -= c
			}
		}
	}
	var ref []*refGrant
	for _, g := range grants {
		ref = append(ref, &refGrant{at: g.at, count: g.count})
	}
	checkWindows(t, fmt.Sprintf("seed %d", seed), ref, maxN, span)
}
