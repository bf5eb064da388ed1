package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/fairshare"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// Shared send slots (Deps.Slots, a process serving many tenants): the waits before a
// send — a 429 pause, a slot, a grant renewal — and what each may not do.

// gateSlots blocks every Acquire (once armed) until open is closed.
type gateSlots struct {
	armed   atomic.Bool
	waiting chan struct{}
	once    sync.Once
	open    chan struct{}
}

func (g *gateSlots) Acquire(ctx context.Context) (func(), error) {
	if g.armed.Load() {
		g.once.Do(func() { close(g.waiting) })
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return func() {}, nil
}

// TestAPauseThatStartsDuringTheSlotWaitIsWaitedOut: a 429 pause that begins while a
// post waits for its shared slot is waited out before the import (and without the
// slot), not inside the client holding it.
func TestAPauseThatStartsDuringTheSlotWaitIsWaitedOut(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	pause := &pausedUntil{}
	slots := &gateSlots{waiting: make(chan struct{}), open: make(chan struct{})}
	slots.armed.Store(true)
	d := r.deps(r.topo.Consumer)
	d.RateLimit, d.Slots = pause, slots
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, item("slotpause-1", "Open SMB", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	<-slots.waiting
	end := time.Now().Add(700 * time.Millisecond)
	pause.until.Store(end.UnixNano())
	close(slots.open)
	testkit.WaitFor(t, 10*time.Second, "the item posted", func() bool { return c.Stats().Created == 1 })
	for _, req := range r.sim.Requests() {
		if req.Method == "POST" && req.At.Before(end) && len(req.Path) > 15 && req.Path[:15] == "/api/now/import" {
			t.Errorf("import at %s, %s before ServiceNow's pause ended", req.At.Format(time.StampMilli), end.Sub(req.At))
		}
	}
}

// holdRecorder measures how long each slot is held.
type holdRecorder struct {
	s    *fairshare.Share
	mu   sync.Mutex
	most time.Duration
}

func (h *holdRecorder) Acquire(ctx context.Context) (func(), error) {
	rel, err := h.s.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	at := time.Now()
	return func() {
		d := time.Since(at)
		h.mu.Lock()
		h.most = max(h.most, d)
		h.mu.Unlock()
		rel()
	}, nil
}

func (h *holdRecorder) longest() time.Duration { h.mu.Lock(); defer h.mu.Unlock(); return h.most }

// TestNoSlotIsHeldThroughA429Pause: with the real client and a real 429, workers
// queued for the shared slot never hold it through the Retry-After pause.
func TestNoSlotIsHeldThroughA429Pause(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{RateLimit: emulator.RateLimit{Requests: 1, Window: emulator.Duration(2 * time.Second)}})
	pool := fairshare.New(1)
	h := &holdRecorder{s: pool.For("a")}
	d := r.deps(r.topo.Consumer)
	d.RateLimit, d.Slots = r.snow, h
	c := r.run(t, d, consumer.Options{Concurrency: 3, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, items("held429", 3)...)
	testkit.WaitFor(t, 20*time.Second, "the items posted", func() bool { return c.Stats().Created == 3 })
	if m := h.longest(); m > 500*time.Millisecond {
		t.Errorf("a shared slot was held for %s (through the 429 pause)", m)
	}
}

// incidentsGate is an IncidentFinder: for first it fails once second was asked; for
// second it waits until repost is closed, then reads ServiceNow.
type incidentsGate struct {
	snow          *servicenow.Client
	first, second string
	secondAsked   chan struct{}
	repost        chan struct{}
	firstFailed   atomic.Bool
}

func (g *incidentsGate) FindIncidents(ctx context.Context, corr string) ([]servicenow.Incident, error) {
	switch corr {
	case mapping.CorrelationID(g.first):
		<-g.secondAsked
		g.firstFailed.Store(true)
		return nil, errors.New("no read access (review)")
	case mapping.CorrelationID(g.second):
		close(g.secondAsked)
		<-g.repost
	}
	return g.snow.FindIncidents(ctx, corr)
}

// repostSlots blocks the first Acquire after the first item's check failed (its
// re-post) until sending halted.
type repostSlots struct {
	g      *incidentsGate
	once   sync.Once
	halted func() bool
	done   atomic.Bool
}

func (s *repostSlots) Acquire(ctx context.Context) (func(), error) {
	if s.g.firstFailed.Load() {
		blocked := false
		s.once.Do(func() { blocked = true; close(s.g.repost) })
		if blocked {
			// Holds the re-post in its slot wait until the other post halted sending.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for deadline := time.Now().Add(10 * time.Second); !s.halted() && time.Now().Before(deadline); {
				<-tick.C
			}
			s.done.Store(true)
		}
	}
	return func() {}, nil
}

// TestNoCoalesceRepostAfterAHaltDuringItsSlotWait: the coalesce check's re-post asks
// whether sending halted after its wait for a slot: a halt decided meanwhile (by
// another worker's check) stops it, so no third incident is made.
func TestNoCoalesceRepostAfterAHaltDuringItsSlotWait(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{NoCoalesce: true, Roles: append(emulator.DefaultRoles(), emulator.RoleITIL)})
	batch := items("rehalt", 2)
	g := &incidentsGate{snow: r.snow, first: batch[0].ID, second: batch[1].ID, secondAsked: make(chan struct{}), repost: make(chan struct{})}
	var c *consumer.Consumer
	var cmu sync.Mutex
	slots := &repostSlots{g: g, halted: func() bool { cmu.Lock(); defer cmu.Unlock(); return c != nil && c.Paused().Halted }}
	d := r.deps(r.topo.Consumer)
	d.Incidents, d.Slots = g, slots
	cc, stop := r.launch(t, d, consumer.Options{Concurrency: 2, PullAhead: -1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	cmu.Lock()
	c = cc
	cmu.Unlock()
	r.publish(t, batch...)
	testkit.WaitFor(t, 10*time.Second, "the first versions created", func() bool { return cc.Stats().Created == 2 })
	for i := range batch {
		batch[i].Urgency = 9.8
	}
	r.publish(t, batch...)
	testkit.WaitFor(t, 10*time.Second, "sending halted", func() bool { return cc.Paused().Halted })
	testkit.WaitFor(t, 10*time.Second, "the re-post's slot wait over", func() bool { return slots.done.Load() })
	if err := stop(); err != nil { // waits for the re-post, if it was made
		t.Fatal(err)
	}
	if n := len(r.sim.Incidents()); n != 4 {
		t.Errorf("%d incidents for 2 items posted twice each, want 4: a re-post went out after the halt", n)
	}
	t.Logf("%d incidents for 2 items", len(r.sim.Incidents()))
}

// givingUpSlots blocks every Acquire until open is closed, and counts the ones that
// gave up because their context ended.
type givingUpSlots struct {
	waiting chan struct{}
	once    sync.Once
	open    chan struct{}
	gaveUp  atomic.Int64
}

func (g *givingUpSlots) Acquire(ctx context.Context) (func(), error) {
	g.once.Do(func() { close(g.waiting) })
	select {
	case <-g.open:
		return func() {}, nil
	case <-ctx.Done():
		g.gaveUp.Add(1)
		return nil, ctx.Err()
	}
}

// TestShutdownWhileWaitingForASlot: a post still waiting for a shared slot when Run's
// context ends (SIGTERM, a tenant deactivated) gives up at once and returns its
// message; it is not sent when a slot frees during the drain.
func TestShutdownWhileWaitingForASlot(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	slots := &givingUpSlots{waiting: make(chan struct{}), open: make(chan struct{})}
	d := r.deps(r.topo.Consumer)
	d.Slots = slots
	c, stop := r.launch(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond, DrainTimeout: 20 * time.Second})
	r.publish(t, item("slotstop-1", "Open SMB", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	<-slots.waiting
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Well before the drain timeout: the wait ends with Run's context.
	testkit.WaitFor(t, 5*time.Second, "the wait for a slot given up", func() bool { return slots.gaveUp.Load() == 1 })
	close(slots.open) // a slot frees during the drain
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Created; n != 0 {
		t.Errorf("%d post(s) that had not started when the consumer stopped were sent during the drain", n)
	}
}

// ageBudget: a grant is fresh for fresh after it was made (KV.Fresh with a small
// margin, e.g. cap.window 10s: margin 100ms, fresh 50ms); counts renewals.
type ageBudget struct {
	budget.Unlimited
	fresh    time.Duration
	acquired atomic.Int64
}

func (b *ageBudget) AcquireGrant(ctx context.Context, want int) (budget.Grant, error) {
	b.acquired.Add(1)
	return budget.Grant{N: want, At: time.Now()}, ctx.Err()
}
func (b *ageBudget) Fresh(g budget.Grant) bool { return time.Since(g.At) < b.fresh }

// TestAStaleGrantIsRenewedInItsSlot: when every wait for a slot is longer than a
// grant stays fresh, the grant is renewed while the slot is held (the window has
// room), so the post goes out instead of renewing and queueing forever.
func TestAStaleGrantIsRenewedInItsSlot(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	pool := fairshare.New(1)
	hog := pool.For("hog") // another tenant whose posts take 100ms, always waiting
	stopHog := make(chan struct{})
	var hogs sync.WaitGroup
	for range 2 {
		hogs.Go(func() {
			for {
				select {
				case <-stopHog:
					return
				default:
				}
				rel, _ := hog.Acquire(context.Background())
				time.Sleep(100 * time.Millisecond)
				rel()
			}
		})
	}
	defer func() { close(stopHog); hogs.Wait() }()
	b := &ageBudget{fresh: 50 * time.Millisecond}
	d := r.deps(r.topo.Consumer)
	d.Budget, d.Slots = b, pool.For("small")
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	r.publish(t, item("livelock-1", "Open SMB", "Vulnerability", 8, "2026-10-01T08:00:00Z"))
	testkit.WaitForDiag(t, 10*time.Second, "the item posted", func() bool { return c.Stats().Created == 1 },
		func() string {
			return fmt.Sprintf("grants taken %d: renewed, and stale each time its slot came", b.acquired.Load())
		})
}
