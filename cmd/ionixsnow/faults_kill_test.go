package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// TestKill9ConsumersWhileItemsFlow kills consume processes with SIGKILL, one at a
// time at random moments, while items are published, and starts a new one in each
// one's place: for the single-tenant form, and for processes serving it and two
// tenants of the bucket at once, each on its own instance. Every item must end as
// exactly one incident on its own tenant's instance (a post in the crash window is
// re-sent as an update, never a second insert), nothing is dead-lettered, and the
// import requests stay bounded by one re-send per message in flight at a kill.
func TestKill9ConsumersWhileItemsFlow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tenants []string // besides the single-tenant form
	}{
		{"single-tenant form", nil},
		{"two tenants and the single-tenant form", []string{"acme", "globex"}},
	} {
		t.Run(tc.name, func(t *testing.T) { killWhileItemsFlow(t, tc.tenants) })
	}
}

// killLane is one tenant's part of the kill test: its items, its instance, its
// durable consumer.
type killLane struct {
	tenant   string // "" the single-tenant form
	sim      *emulator.Server
	items    []ionix.ActionItem
	consumer string
	pub      *publisher.Publisher
}

func killWhileItemsFlow(t *testing.T, tenants []string) {
	const (
		nItems      = 300 // over all tenants
		nProcs      = 3
		nKills      = 10
		concurrency = 4
	)
	rng := rand.New(rand.NewPCG(testSeed(t, "FAULT_SEED"), 9))
	// A little latency keeps posts in flight when a process dies.
	latency := emulator.Options{Latency: 20 * time.Millisecond, LatencyJitter: 40 * time.Millisecond, Seed: 9}
	r := newFaultRig(t, latency,
		"IONIXSNOW_CONSUMER_CONCURRENCY="+strconv.Itoa(concurrency),
		"IONIXSNOW_CONSUMER_ACK_WAIT=2s",
		"IONIXSNOW_CONSUMER_MAX_BACKOFF=1s",
		"IONIXSNOW_CONSUMER_DRAIN_TIMEOUT=5s")
	lanes := []*killLane{{sim: r.sim, consumer: topology.DefaultConsumer, pub: publisher.New(r.js, "")}}
	env := r.env
	if len(tenants) > 0 {
		env = r.withTenants(t, latency, tenants...)
		for _, id := range tenants {
			names := topology.DefaultNames().ForTenant(id)
			lanes = append(lanes, &killLane{tenant: id, sim: r.tenantSims[id], consumer: names.Consumer,
				pub: publisher.ForTenant(r.js, names.ItemSubjectPrefix(), id)})
		}
	}
	// Ids differ between tenants: an item on another tenant's instance is foreign there.
	var order []*killLane // the lane of each item published, in order
	for i, l := range lanes {
		prefix := "kill-" + strconv.Itoa(i)
		l.items = faultItems(prefix, nItems/len(lanes), int64(91+i))
		for range l.items {
			order = append(order, l)
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	f := newFleetServing(t, env, nProcs, len(tenants))

	// Publish in a stream over the whole kill phase.
	var published atomic.Int64
	pubErr := make(chan error, 1)
	stopPub := make(chan struct{})
	go func() {
		tick := time.NewTicker(15 * time.Millisecond) // ≈ 4.5 s for 300 items
		defer tick.Stop()
		next := map[*killLane]int{}
		for _, l := range order {
			select {
			case <-tick.C:
			case <-stopPub:
				pubErr <- errors.New("publishing stopped early")
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := publishItem(ctx, l.pub, l.items[next[l]])
			cancel()
			if err != nil {
				pubErr <- err
				return
			}
			next[l]++
			published.Add(1)
		}
		pubErr <- nil
	}()
	defer close(stopPub)

	// Kill at random moments, every 200–600 ms, at least nKills times and until the
	// last item is published.
	var pubDone bool
	for f.kills < nKills || !pubDone {
		timer := time.NewTimer(time.Duration(200+rng.IntN(400)) * time.Millisecond)
		select {
		case err := <-pubErr:
			timer.Stop()
			if err != nil {
				t.Fatalf("publish after %d items: %v", published.Load(), err)
			}
			pubDone = true
			continue
		case <-timer.C:
		}
		f.replaceExited()
		f.waitConsuming()
		f.kill9(rng.IntN(len(f.procs)))
	}
	t.Logf("%d kills while %d items were published", f.kills, published.Load())

	for _, l := range lanes {
		diag := func() string {
			tl := tallyIncidents(l.sim.Incidents(), l.items)
			return fmt.Sprintf("tenant %q: %d of %d incidents (missing: %s); %s; %d imports\n%s", l.tenant,
				tl.incidents, len(l.items), firstFew(tl.lost, 10), r.consumerStateOf(l.consumer), l.sim.ImportCount(), f.logsTail(30))
		}
		testkit.WaitForDiag(t, 30*time.Second, "every item to become an incident", func() bool {
			return len(l.sim.Incidents()) >= len(l.items)
		}, diag)
		// Redeliveries of killed processes' messages settle after AckWait.
		testkit.WaitForDiag(t, 20*time.Second, "the consumer to settle every message", func() bool { return r.consumerIdleOf(l.consumer) }, diag)
	}
	f.replaceExited()
	f.stopAll()

	imports := 0
	for _, l := range lanes {
		tl := tallyIncidents(l.sim.Incidents(), l.items)
		n := l.sim.ImportCount()
		imports += n
		aborted := 0 // import requests whose client died before the answer
		for _, rq := range l.sim.Requests() {
			if strings.HasPrefix(rq.Path, "/api/now/import/") && rq.Status == 0 {
				aborted++
			}
		}
		t.Logf("tenant %q: incidents %d, updates (crash-window re-posts) %d, imports %d (%d cut off by a kill)",
			l.tenant, tl.incidents, tl.updates, n, aborted)
		if tl.incidents != len(l.items) || len(tl.lost) > 0 || tl.foreign > 0 {
			t.Errorf("tenant %q: %d incidents for %d items (lost: %s; %d of items not its own)", l.tenant, tl.incidents, len(l.items), firstFew(tl.lost, 10), tl.foreign)
		}
		if tl.duplicates() > 0 {
			t.Errorf("tenant %q: duplicated incidents: %s %s", l.tenant, firstFew(tl.multiInsert, 10), firstFew(tl.dupCorr, 10))
		}
		if tl.updates > n-len(l.items) {
			t.Errorf("tenant %q: %d updates but only %d import requests beyond the items", l.tenant, tl.updates, n-len(l.items))
		}
	}
	t.Logf("kills %d: imports %d for %d items, redeliveries acked from the ledger without a post %d",
		f.kills, imports, nItems, f.count("redelivery already ticketed; acknowledging without a post"))
	if n := len(r.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	// Each kill can cost at most one re-send per message in flight (concurrency per
	// tenant's pipeline), plus a little slack for a request already on its way.
	if limit := nItems + f.kills*concurrency*len(lanes) + 5; imports > limit {
		t.Errorf("%d import requests for %d items and %d kills, want at most %d", imports, nItems, f.kills, limit)
	}
	if t.Failed() {
		t.Logf("process output:\n%s", f.logsTail(40))
	}
}
