package consumer_test

import (
	"context"
	"slices"
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

// renewingBudget grants everything. Once armed, the first grant asked about is fresh
// and every later one stale but for the renewals; the renewal of a stale grant (its
// send given back, then one asked for) waits until release is closed.
type renewingBudget struct {
	budget.Unlimited
	mu       sync.Mutex
	armed    bool
	asked    int
	renewing bool
	renewed  []budget.Grant
	blocked  chan struct{} // closed when a renewal first waits
	once     sync.Once
	release  chan struct{}
}

func (b *renewingBudget) arm() { b.mu.Lock(); b.armed = true; b.mu.Unlock() }

func (b *renewingBudget) Fresh(g budget.Grant) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.armed || slices.Contains(b.renewed, g) {
		return true
	}
	b.asked++
	return b.asked == 1
}

func (b *renewingBudget) ReleaseGrant(_ context.Context, _ budget.Grant, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed && n == 1 && b.asked > 1 {
		b.renewing = true
	}
	return nil
}

func (b *renewingBudget) AcquireGrant(ctx context.Context, want int) (budget.Grant, error) {
	b.mu.Lock()
	renewal := b.renewing
	b.renewing = false
	b.mu.Unlock()
	if renewal {
		b.once.Do(func() { close(b.blocked) })
		select {
		case <-b.release:
		case <-ctx.Done():
			// Given up (the attempt in the slot is bounded): still to renew.
			b.mu.Lock()
			b.renewing = true
			b.mu.Unlock()
			return budget.Grant{}, ctx.Err()
		}
		g, err := b.Unlimited.AcquireGrant(ctx, want)
		b.mu.Lock()
		b.renewed = append(b.renewed, g)
		b.mu.Unlock()
		return g, err
	}
	return b.Unlimited.AcquireGrant(ctx, want)
}

// renewalHeldImporter holds every import, once armed, until the budget's renewal waits.
type renewalHeldImporter struct {
	consumer.Importer
	b     *renewingBudget
	armed chan struct{}
}

func (h renewalHeldImporter) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	select {
	case <-h.armed:
		select {
		case <-h.b.blocked:
		case <-ctx.Done():
			return servicenow.Result{}, ctx.Err()
		}
	default:
	}
	return h.Importer.Import(ctx, rec)
}

// TestNoPostAfterHaltWhileAGrantIsRenewed: on an instance that does not coalesce, a
// worker renewing a stale grant (waiting for the window) while another worker's post
// makes a second incident and halts sending must not post once it has its grant: the
// breaker is asked after the renewal.
func TestNoPostAfterHaltWhileAGrantIsRenewed(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{NoCoalesce: true})
	b := &renewingBudget{blocked: make(chan struct{}), release: make(chan struct{})}
	imp := renewalHeldImporter{Importer: r.snow, b: b, armed: make(chan struct{})}
	d := r.deps(r.topo.Consumer)
	d.Importer, d.Incidents, d.Budget = imp, r.snow, b
	// Two workers, nothing pulled ahead: the pull loop asks for no grant while both
	// updates are in hand.
	c, stop := r.launch(t, d, consumer.Options{Concurrency: 2, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	batch := items("renew", 2)
	r.publish(t, batch...)
	testkit.WaitFor(t, 10*time.Second, "the first versions created", func() bool { return c.Stats().Created == 2 })
	b.arm()
	close(imp.armed)
	for i := range batch {
		batch[i].Urgency = 9.8
	}
	r.publish(t, batch...)
	testkit.WaitFor(t, 10*time.Second, "sending halted", func() bool { return c.Paused().Halted })
	before := r.sim.ImportCount()
	close(b.release)
	if err := stop(); err != nil { // waits for the worker that was renewing
		t.Fatal(err)
	}
	if n := r.sim.ImportCount() - before; n != 0 {
		t.Errorf("%d import(s) sent after the halt; %d incidents for 2 items", n, len(r.sim.Incidents()))
	}
}

// pausedUntil is a RateLimited whose pause ends at a set time.
type pausedUntil struct{ until atomic.Int64 }

func (p *pausedUntil) PausedUntil() time.Time { return time.Unix(0, p.until.Load()) }

// TestPostWaitsOutARateLimitPauseBeforeItsGrantIsJudged: while ServiceNow's 429 pause
// lasts, a post waits before its grant is judged fresh or renewed (not inside the
// client, where the wait would come after the judgement): the import goes out after
// the pause, on a grant renewed then.
func TestPostWaitsOutARateLimitPauseBeforeItsGrantIsJudged(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	grants := &staleBudget{}
	pause := &pausedUntil{}
	d := r.deps(r.topo.Consumer)
	d.Budget, d.RateLimit = grants, pause
	end := time.Now().Add(700 * time.Millisecond)
	pause.until.Store(end.UnixNano())
	grants.age() // every grant taken before now is stale
	r.publish(t, item("paused-1", "Open SMB on files.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "the item posted", func() bool { return c.Stats().Created == 1 })
	for _, req := range r.sim.Requests() {
		if strings.HasPrefix(req.Path, "/api/now/import/") && req.At.Before(end) {
			t.Errorf("import at %s, %s before ServiceNow's pause ended", req.At.Format(time.StampMilli), end.Sub(req.At))
		}
	}
}
