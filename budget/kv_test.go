package budget_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/topology"
)

// budgetServer starts an in-process nats-server on dir (listen "" picks a port).
func budgetServer(t testing.TB, dir, listen string) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{StoreDir: dir, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// budgetBucket connects to url (its own connection) and opens the budget bucket.
func budgetBucket(t testing.TB, url string, opts ...nats.Option) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := topology.EnsureBucket(context.Background(), js, topology.DefaultBudgetBucket, "budget", 1)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func newBudget(t testing.TB, kv jetstream.KeyValue, limit int, window time.Duration, opts ...budget.Option) *budget.KV {
	t.Helper()
	b, err := budget.NewKV(kv, limit, window, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clockStart is where the tests' clocks start.
var clockStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// conflictCounter wraps a bucket and counts lost compare-and-swaps.
type conflictCounter struct {
	jetstream.KeyValue
	n *atomic.Int64
}

func (c conflictCounter) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	r, err := c.KeyValue.Update(ctx, key, value, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		c.n.Add(1)
	}
	return r, err
}

func (c conflictCounter) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	r, err := c.KeyValue.Create(ctx, key, value, opts...)
	if errors.Is(err, jetstream.ErrKeyExists) {
		c.n.Add(1)
	}
	return r, err
}

func mustState(t *testing.T, b *budget.KV) budget.State {
	t.Helper()
	st, err := b.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestKVBudgetGrantsReleasesAndState(t *testing.T) {
	srv := budgetServer(t, t.TempDir(), "")
	// slice: window/1,000 rounded down to a power of two of ms.
	const window, margin, slice = 10 * time.Second, 100 * time.Millisecond, 8 * time.Millisecond
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, b *budget.KV, clock *testkit.Clock)
	}{
		{"grants up to the limit, then blocks until ctx ends", func(t *testing.T, b *budget.KV, clock *testkit.Clock) {
			if n, err := b.Acquire(ctx, 3); err != nil || n != 3 {
				t.Fatalf("Acquire(3) = %d, %v", n, err)
			}
			if n, err := b.Acquire(ctx, 4); err != nil || n != 2 {
				t.Fatalf("Acquire(4) = %d, %v; want the 2 left", n, err)
			}
			st := mustState(t, b)
			// The grants are counted in the slice of now (8ms, the clock at its
			// start), which holds them until its last ms + window + margin.
			wantNext := clock.Now().Add(window + margin + slice)
			if st.Used != 5 || st.Limit != 5 || st.WindowSeconds != 10 || !st.NextFreeAt.Equal(wantNext) || st.Remaining() != 0 {
				t.Fatalf("state = %+v, want 5/5 used, window 10s, next free %s", st, wantNext)
			}
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if n, err := b.Acquire(short, 1); !errors.Is(err, context.DeadlineExceeded) || n != 0 {
				t.Fatalf("Acquire on a full budget = %d, %v; want it to block until the deadline", n, err)
			}
		}},
		{"a true sliding window, not fixed buckets", func(t *testing.T, b *budget.KV, clock *testkit.Clock) {
			if n, _ := b.Acquire(ctx, 2); n != 2 {
				t.Fatalf("granted %d, want 2", n)
			}
			clock.Advance(6 * time.Second)
			if n, _ := b.Acquire(ctx, 3); n != 3 {
				t.Fatalf("granted %d, want 3", n)
			}
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			clock.Advance(window + margin - 6*time.Second + slice - time.Millisecond) // not yet
			if n, err := b.Acquire(short, 5); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("granted %d, %v one ms before the first grants' slice expires, want 0", n, err)
			}
			clock.Advance(time.Millisecond) // the first two expire
			if n, _ := b.Acquire(ctx, 5); n != 2 {
				t.Fatalf("granted %d after the first grants expired, want exactly 2", n)
			}
			if st := mustState(t, b); st.Used != 5 || st.NextFreeAt.IsZero() {
				t.Fatalf("state = %+v", st)
			}
			clock.Advance(6 * time.Second)
			if st := mustState(t, b); st.Used != 2 || !st.NextFreeAt.IsZero() || st.Remaining() != 3 {
				t.Fatalf("state = %+v, want 2 used and a free slot", st)
			}
		}},
		{"release gives back unused grants", func(t *testing.T, b *budget.KV, clock *testkit.Clock) {
			g, err := b.AcquireGrant(ctx, 4)
			if err != nil || g.N != 4 {
				t.Fatalf("AcquireGrant = %+v, %v", g, err)
			}
			if err := b.Release(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if st := mustState(t, b); st.Used != 3 {
				t.Fatalf("used %d after releasing 1 of 4, want 3", st.Used)
			}
			if err := b.ReleaseGrant(ctx, g, 2); err != nil {
				t.Fatal(err)
			}
			if st := mustState(t, b); st.Used != 1 {
				t.Fatalf("used %d after releasing 2 more, want 1", st.Used)
			}
			if n, _ := b.Acquire(ctx, 9); n != 4 {
				t.Fatalf("granted %d after the release, want 4", n)
			}
			// Releasing more than is outstanding gives back only what this process holds.
			if err := b.Release(ctx, 50); err != nil {
				t.Fatal(err)
			}
			if st := mustState(t, b); st.Used != 0 {
				t.Fatalf("used %d, want 0", st.Used)
			}
		}},
		{"a grant that expired is not given back twice", func(t *testing.T, b *budget.KV, clock *testkit.Clock) {
			old, _ := b.AcquireGrant(ctx, 2)
			clock.Advance(window + margin + slice)
			if n, _ := b.Acquire(ctx, 5); n != 5 {
				t.Fatalf("granted %d, want 5", n)
			}
			if err := b.ReleaseGrant(ctx, old, 2); err != nil {
				t.Fatal(err)
			}
			if st := mustState(t, b); st.Used != 5 {
				t.Fatalf("used %d after releasing an expired grant, want 5", st.Used)
			}
		}},
		{"only this process's grants are released", func(t *testing.T, b *budget.KV, clock *testkit.Clock) {
			other := newBudget(t, b2kv(t, srv), 5, window, budget.WithMargin(margin),
				budget.WithClock(clock.Now), budget.WithKey(budgetKey(t)))
			if n, _ := other.Acquire(ctx, 3); n != 3 {
				t.Fatalf("granted %d, want 3", n)
			}
			if err := b.Release(ctx, 3); err != nil {
				t.Fatal(err)
			}
			if st := mustState(t, b); st.Used != 3 {
				t.Fatalf("used %d: a release took another replica's grants", st.Used)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := testkit.NewClock(clockStart)
			b := newBudget(t, budgetBucket(t, srv.URL()), 5, window,
				budget.WithMargin(margin), budget.WithClock(clock.Now), budget.WithKey(budgetKey(t)))
			tc.run(t, b, clock)
		})
	}
}

// budgetKey is a key of its own for each test.
func budgetKey(t *testing.T) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
}

// b2kv is a second connection to the budget bucket.
func b2kv(t *testing.T, srv *embedded.Server) jetstream.KeyValue { return budgetBucket(t, srv.URL()) }

// TestKVBudgetContention runs several clients, each with its own connection and
// budget, against one ledger: compare-and-swap conflicts happen and are retried,
// and the grants never exceed the cap.
func TestKVBudgetContention(t *testing.T) {
	srv := budgetServer(t, t.TempDir(), "")
	for _, tc := range []struct {
		name    string
		clients int
		limit   int
		window  time.Duration
		run     time.Duration // 0: a frozen clock, run until the cap is reached
		release bool          // clients give back part of each grant
	}{
		{"frozen clock, cap reached exactly", 6, 200, time.Hour, 0, false},
		{"real clock, grants and releases over several windows", 3, 20, 400 * time.Millisecond, 2 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conflicts atomic.Int64
			now := time.Now
			if tc.run == 0 {
				now = testkit.NewClock(clockStart).Now
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.run > 0 {
				ctx, cancel = context.WithTimeout(ctx, tc.run)
				defer cancel()
			}
			var (
				mu     sync.Mutex
				net    []int64 // stamps of grants that were kept
				total  atomic.Int64
				wg     sync.WaitGroup
				errs   = make(chan error, tc.clients)
				bucket = budgetKey(t)
			)
			budgets := make([]*budget.KV, tc.clients)
			for i := range budgets {
				kv := conflictCounter{KeyValue: budgetBucket(t, srv.URL()), n: &conflicts}
				budgets[i] = newBudget(t, kv, tc.limit, tc.window, budget.WithMargin(0),
					budget.WithClock(now), budget.WithKey(bucket), budget.WithPoll(20*time.Millisecond))
			}
			for i, b := range budgets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(i), 1))
					for {
						g, err := b.AcquireGrant(ctx, 1+rng.IntN(4))
						if err != nil {
							if ctx.Err() == nil {
								errs <- err
							}
							return
						}
						keep := g.N
						if tc.release && rng.IntN(2) == 0 {
							back := rng.IntN(g.N + 1)
							if err := b.ReleaseGrant(context.Background(), g, back); err != nil {
								errs <- err
								return
							}
							keep -= back
						}
						total.Add(int64(keep))
						mu.Lock()
						for range keep {
							net = append(net, g.At.UnixMilli())
						}
						mu.Unlock()
					}
				}()
			}
			if tc.run == 0 {
				testkit.WaitFor(t, 20*time.Second, "the cap to be reached", func() bool { return total.Load() >= int64(tc.limit) })
				cancel()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("client failed: %v", err)
			}
			if tc.run == 0 {
				st := mustState(t, budgets[0])
				if total.Load() != int64(tc.limit) || st.Used != tc.limit {
					t.Fatalf("granted %d, ledger holds %d; want exactly %d", total.Load(), st.Used, tc.limit)
				}
			}
			slices.Sort(net)
			w := tc.window.Milliseconds()
			for i := 0; i+tc.limit < len(net); i++ {
				if net[i+tc.limit]-net[i] < w {
					t.Fatalf("%d grants within %dms (%d..%d), cap %d", tc.limit+1, w, net[i], net[i+tc.limit], tc.limit)
				}
			}
			if tc.run > 0 {
				// Under constant demand the cap is used: at least 80 % of the windows' worth.
				if want := int(float64(tc.limit) * tc.run.Seconds() / tc.window.Seconds() * 0.8); len(net) < want {
					t.Errorf("only %d grants kept in %s, want at least %d", len(net), tc.run, want)
				}
			}
			if conflicts.Load() == 0 {
				t.Error("no compare-and-swap conflict happened: the test did not exercise contention")
			}
			t.Logf("%d grants kept, %d conflicts retried", len(net), conflicts.Load())
		})
	}
}

// TestKVBudgetStateSurvivesRestarts: the state lives in the bucket, so a new budget
// object (a restarted replica) and a restarted nats-server both see earlier grants.
func TestKVBudgetStateSurvivesRestarts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart func(t *testing.T, srv **embedded.Server, dir string) *budget.KV
	}{
		{"a new budget over the same bucket", func(t *testing.T, srv **embedded.Server, dir string) *budget.KV {
			return newBudget(t, budgetBucket(t, (*srv).URL()), 10, time.Hour)
		}},
		{"nats-server stopped and started on the same store", func(t *testing.T, srv **embedded.Server, dir string) *budget.KV {
			u, err := url.Parse((*srv).URL())
			if err != nil {
				t.Fatal(err)
			}
			(*srv).Stop()
			*srv = budgetServer(t, dir, u.Host)
			return newBudget(t, budgetBucket(t, (*srv).URL()), 10, time.Hour)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := budgetServer(t, dir, "127.0.0.1:0")
			// The first budget's connection reconnects across a server restart.
			first := newBudget(t, budgetBucket(t, srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond)), 10, time.Hour)
			ctx := context.Background()
			if n, err := first.Acquire(ctx, 7); err != nil || n != 7 {
				t.Fatalf("Acquire = %d, %v", n, err)
			}
			again := tc.restart(t, &srv, dir)
			if st := mustState(t, again); st.Used != 7 {
				t.Fatalf("after the restart the budget shows %d used, want 7", st.Used)
			}
			if n, err := again.Acquire(ctx, 10); err != nil || n != 3 {
				t.Fatalf("Acquire after the restart = %d, %v; want the 3 left", n, err)
			}
			var st budget.State
			testkit.WaitFor(t, 10*time.Second, "the first budget to read the ledger again", func() bool {
				var err error
				st, err = first.State(ctx)
				return err == nil
			})
			if st.Used != 10 {
				t.Fatalf("the first budget sees %d used, want 10", st.Used)
			}
		})
	}
}

func TestKVBudgetCorruptLedgerIsAnError(t *testing.T) {
	srv := budgetServer(t, t.TempDir(), "")
	kv := budgetBucket(t, srv.URL())
	b := newBudget(t, kv, 5, time.Minute)
	ctx := context.Background()
	if _, err := kv.Put(ctx, budget.DefaultKey, []byte{9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if n, err := b.Acquire(short, 1); err == nil || n != 0 || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire over a corrupt ledger = %d, %v; want an error at once", n, err)
	}
	if _, err := b.State(ctx); err == nil {
		t.Fatal("State over a corrupt ledger did not fail")
	}
	if err := kv.Delete(ctx, budget.DefaultKey); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Acquire(ctx, 2); err != nil || n != 2 {
		t.Fatalf("Acquire after deleting the key = %d, %v", n, err)
	}
}

// TestKVBudgetClockAhead: a replica whose clock is an hour ahead cannot block the
// budget for an hour: its stamps count as made at most a margin in the future.
func TestKVBudgetClockAhead(t *testing.T) {
	srv := budgetServer(t, t.TempDir(), "")
	clock := testkit.NewClock(clockStart)
	ahead := testkit.NewClock(clock.Now().Add(time.Hour))
	const window, margin = time.Minute, time.Second
	opts := func(c *testkit.Clock) []budget.Option {
		return []budget.Option{budget.WithClock(c.Now), budget.WithMargin(margin)}
	}
	skewed := newBudget(t, budgetBucket(t, srv.URL()), 3, window, opts(ahead)...)
	b := newBudget(t, budgetBucket(t, srv.URL()), 3, window, opts(clock)...)
	if n, _ := skewed.Acquire(context.Background(), 3); n != 3 {
		t.Fatalf("granted %d, want 3", n)
	}
	st := mustState(t, b)
	limit := clock.Now().Add(margin + window + margin + window/1000) // + one slice
	if st.Used != 3 || st.NextFreeAt.IsZero() || st.NextFreeAt.After(limit) {
		t.Fatalf("state = %+v, want 3 used and the next slot free by %s", st, limit)
	}
}

func TestBudgetStateJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		st   budget.State
		want string
	}{
		{"full", budget.State{Used: 1000, Limit: 1000, WindowSeconds: 3600, NextFreeAt: at.Add(90 * time.Second), At: at},
			`{"used":1000,"limit":1000,"window_seconds":3600,"next_free_at":"2026-03-01T12:01:30Z"}`},
		{"free now", budget.State{Used: 3, Limit: 1000, WindowSeconds: 3600, At: at},
			`{"used":3,"limit":1000,"window_seconds":3600,"next_free_at":"2026-03-01T12:00:00Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.st)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestNewKVBudgetRejectsBadArguments(t *testing.T) {
	srv := budgetServer(t, t.TempDir(), "")
	kv := budgetBucket(t, srv.URL())
	for _, tc := range []struct {
		name   string
		kv     jetstream.KeyValue
		limit  int
		window time.Duration
		opts   []budget.Option
	}{
		{"no bucket", nil, 10, time.Hour, nil},
		{"zero limit", kv, 0, time.Hour, nil},
		{"zero window", kv, 10, 0, nil},
		{"invalid key", kv, 10, time.Hour, []budget.Option{budget.WithKey("a b")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := budget.NewKV(tc.kv, tc.limit, tc.window, tc.opts...); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
