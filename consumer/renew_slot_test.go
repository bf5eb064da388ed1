package consumer_test

// Renewing a stale grant while a shared send slot is held (consumer/ready.go): what the
// renewed grant must still satisfy, and what is given back when the consumer stops.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// scriptBudget: pull grants are born stale; the next AcquireGrant after a Fresh
// that said no is a renewal, run by script. Tracks every grant's unspent sends.
type scriptBudget struct {
	mu       sync.Mutex
	fresh    time.Duration
	seq      int64
	pending  bool
	renewals int
	renewed  map[budget.Grant]bool
	out      map[budget.Grant]int
	over     []string
	last     budget.Grant
	script   func(n int, ctx context.Context) (time.Duration, error) // store delay, error
}

func (b *scriptBudget) Acquire(ctx context.Context, want int) (int, error) { panic("unused") }
func (b *scriptBudget) Release(ctx context.Context, n int) error           { panic("unused") }

func (b *scriptBudget) AcquireGrant(ctx context.Context, want int) (budget.Grant, error) {
	if err := ctx.Err(); err != nil {
		return budget.Grant{}, err
	}
	b.mu.Lock()
	renewal, n := b.pending, b.renewals
	if renewal {
		b.renewals++
	}
	b.seq++
	seq := b.seq
	b.mu.Unlock()
	now := time.Now().Add(time.Duration(seq)) // unique
	if !renewal {
		g := budget.Grant{N: want, At: now.Add(-time.Hour)}
		b.mu.Lock()
		b.out[g] += want
		b.mu.Unlock()
		return g, nil
	}
	delay, err := b.script(n, ctx)
	if err != nil {
		return budget.Grant{}, err
	}
	time.Sleep(delay) // the KV write, not cut short by ctx (budget/kv.go WithoutCancel)
	g := budget.Grant{N: want, At: now}
	b.mu.Lock()
	b.out[g] += want
	b.renewed[g] = true
	b.pending = false
	b.last = g
	b.mu.Unlock()
	return g, nil
}

func (b *scriptBudget) ReleaseGrant(_ context.Context, g budget.Grant, n int) error {
	n = min(n, g.N)
	if n <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.out[g] < n {
		b.over = append(b.over, fmt.Sprintf("release %d of %v, %d unspent", n, g.At.Format(time.StampMicro), b.out[g]))
		return nil
	}
	b.out[g] -= n
	return nil
}

func (b *scriptBudget) Fresh(g budget.Grant) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.renewed[g] && time.Since(g.At) < b.fresh {
		return true
	}
	b.pending = true
	return false
}

func (b *scriptBudget) outstanding() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, v := range b.out {
		n += v
	}
	return n
}

func newScriptBudget(fresh time.Duration, script func(int, context.Context) (time.Duration, error)) *scriptBudget {
	return &scriptBudget{fresh: fresh, renewed: map[budget.Grant]bool{}, out: map[budget.Grant]int{}, script: script}
}

// ageAtImport records the age of the last renewed grant at each import.
type ageAtImport struct {
	consumer.Importer
	b    *scriptBudget
	mu   sync.Mutex
	ages []time.Duration
}

func (a *ageAtImport) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	a.b.mu.Lock()
	age := time.Since(a.b.last.At)
	a.b.mu.Unlock()
	a.mu.Lock()
	a.ages = append(a.ages, age)
	a.mu.Unlock()
	return a.Importer.Import(ctx, rec)
}

// TestARenewalInTheSlotIsJudgedFreshToo: a renewal made in the slot whose KV write
// outlasts the freshness (a slow store) is judged again before the send: no import
// goes out on a grant older than Fresh allows.
func TestARenewalInTheSlotIsJudgedFreshToo(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	b := newScriptBudget(50*time.Millisecond, func(n int, ctx context.Context) (time.Duration, error) {
		if n == 0 {
			return 80 * time.Millisecond, nil // the store takes 80ms
		}
		return 0, nil
	})
	d := r.deps(r.topo.Consumer)
	imp := &ageAtImport{Importer: r.snow, b: b}
	d.Budget, d.Importer = b, imp
	c := r.run(t, d, consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, item("fastren-1", "Open SMB", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	testkit.WaitFor(t, 10*time.Second, "posted", func() bool { return c.Stats().Created == 1 })
	imp.mu.Lock()
	defer imp.mu.Unlock()
	for _, a := range imp.ages {
		if a >= b.fresh {
			t.Errorf("import on a grant %s old (fresh: under %s)", a, b.fresh)
		}
	}
	if len(b.over) > 0 {
		t.Errorf("over-released: %v", b.over)
	}
}

// TestAPauseThatBeginsDuringARenewalIsWaitedOut: a 429 that begins while a stale
// grant is renewed in the slot is waited out before the import.
func TestAPauseThatBeginsDuringARenewalIsWaitedOut(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	pause := &pausedUntil{}
	var end atomic.Int64
	b := newScriptBudget(10*time.Second, func(n int, ctx context.Context) (time.Duration, error) {
		if n == 0 {
			e := time.Now().Add(700 * time.Millisecond)
			end.Store(e.UnixNano())
			pause.until.Store(e.UnixNano()) // another worker's 429 lands meanwhile
		}
		return 0, nil
	})
	d := r.deps(r.topo.Consumer)
	d.Budget, d.RateLimit = b, pause
	c := r.run(t, d, consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, item("renpause-1", "Open SMB", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	testkit.WaitFor(t, 10*time.Second, "posted", func() bool { return c.Stats().Created == 1 })
	e := time.Unix(0, end.Load())
	for _, req := range r.sim.Requests() {
		if strings.HasPrefix(req.Path, "/api/now/import/") && req.At.Before(e) {
			t.Errorf("import %s before the pause that began in the renewal ended", e.Sub(req.At))
		}
	}
}

// TestShutdownAfterARenewalGivesEveryGrantBack: the renewal in the slot finds the
// window full, the one outside it succeeds, and Run ends during the next slot wait:
// nothing is sent, and every grant is given back exactly once.
func TestShutdownAfterARenewalGivesEveryGrantBack(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	slots := &gateSlots{waiting: make(chan struct{}), open: make(chan struct{})}
	b := newScriptBudget(10*time.Second, func(n int, ctx context.Context) (time.Duration, error) {
		if _, ok := ctx.Deadline(); ok && n == 0 {
			<-ctx.Done() // window full
			return 0, ctx.Err()
		}
		slots.armed.Store(true) // the next slot wait blocks
		return 0, nil
	})
	d := r.deps(r.topo.Consumer)
	d.Budget, d.Slots = b, slots
	c, stop := r.launch(t, d, consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond, DrainTimeout: 20 * time.Second})
	r.publish(t, item("acct-1", "Open SMB", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	testkit.WaitFor(t, 10*time.Second, "the second slot wait", func() bool {
		select {
		case <-slots.waiting:
			return true
		default:
			return false
		}
	})
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %s; renewals %d", time.Since(start), b.renewals)
	if n := c.Stats().Created; n != 0 {
		t.Errorf("%d sent", n)
	}
	if n := b.outstanding(); n != 0 {
		t.Errorf("%d sends still held after stop, want 0", n)
	}
	if len(b.over) > 0 {
		t.Errorf("over-released: %v", b.over)
	}
}

// slowGiveBack is a scriptBudget whose give-backs take 80ms (the KV write on a
// loaded machine); one whose context ends first is cut short, and counted.
type slowGiveBack struct {
	*scriptBudget
	cut atomic.Int64
}

func (b *slowGiveBack) ReleaseGrant(ctx context.Context, g budget.Grant, n int) error {
	t := time.NewTimer(80 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		b.cut.Add(1)
		return ctx.Err()
	}
	return b.scriptBudget.ReleaseGrant(ctx, g, n)
}

// TestAStaleGrantsGiveBackIsNotCutShortWithoutSharedSlots: a stale grant is given
// back before its renewal; without shared send slots that give-back holds up no
// one, and is not cut short when the budget's write is slow — cut short it would
// leave the stale send counted, and the window a send short.
func TestAStaleGrantsGiveBackIsNotCutShortWithoutSharedSlots(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	b := &slowGiveBack{scriptBudget: newScriptBudget(10*time.Second, func(int, context.Context) (time.Duration, error) { return 0, nil })}
	d := r.deps(r.topo.Consumer)
	d.Budget = b
	c := r.run(t, d, consumer.Options{Concurrency: 1, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, item("slowback-1", "Open SMB", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	testkit.WaitFor(t, 10*time.Second, "posted", func() bool { return c.Stats().Created == 1 })
	if n := b.cut.Load(); n != 0 {
		t.Errorf("%d give-backs of a stale grant cut short", n)
	}
	if len(b.over) > 0 {
		t.Errorf("over-released: %v", b.over)
	}
}
