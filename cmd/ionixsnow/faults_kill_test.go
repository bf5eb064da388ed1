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
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestKill9ConsumersWhileItemsFlow kills consume processes with SIGKILL, one at a
// time at random moments, while items are published, and starts a new one in each
// one's place. Every item must end as exactly one incident (a post in the crash
// window is re-sent as an update, never a second insert), nothing is dead-lettered,
// and the import requests stay bounded by one re-send per message in flight at a
// kill.
func TestKill9ConsumersWhileItemsFlow(t *testing.T) {
	const (
		nItems      = 300
		nProcs      = 3
		nKills      = 10
		concurrency = 4
	)
	rng := rand.New(rand.NewPCG(testSeed(t, "FAULT_SEED"), 9))
	// A little latency keeps posts in flight when a process dies.
	r := newFaultRig(t, emulator.Options{Latency: 20 * time.Millisecond, LatencyJitter: 40 * time.Millisecond, Seed: 9},
		"IONIXSNOW_CONSUMER_CONCURRENCY="+strconv.Itoa(concurrency),
		"IONIXSNOW_CONSUMER_ACK_WAIT=2s",
		"IONIXSNOW_CONSUMER_MAX_BACKOFF=1s",
		"IONIXSNOW_CONSUMER_DRAIN_TIMEOUT=5s")
	items := faultItems("kill", nItems, 91)
	f := newFleet(t, r.env, nProcs)

	// Publish in a stream over the whole kill phase.
	var published atomic.Int64
	pubErr := make(chan error, 1)
	stopPub := make(chan struct{})
	go func() {
		p := publisher.New(r.js, "")
		tick := time.NewTicker(15 * time.Millisecond) // ≈ 4.5 s for 300 items
		defer tick.Stop()
		for _, it := range items {
			select {
			case <-tick.C:
			case <-stopPub:
				pubErr <- errors.New("publishing stopped early")
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := publishItem(ctx, p, it)
			cancel()
			if err != nil {
				pubErr <- err
				return
			}
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

	diag := func() string {
		tl := tallyIncidents(r.sim.Incidents(), items)
		return fmt.Sprintf("%d of %d incidents (missing: %s); %s; %d imports\n%s",
			tl.incidents, nItems, firstFew(tl.lost, 10), r.consumerState(), r.sim.ImportCount(), f.logsTail(30))
	}
	testkit.WaitForDiag(t, 30*time.Second, "every item to become an incident", func() bool {
		return len(r.sim.Incidents()) >= nItems
	}, diag)
	// Redeliveries of killed processes' messages settle after AckWait.
	testkit.WaitForDiag(t, 20*time.Second, "the consumer to settle every message", r.consumerIdle, diag)
	f.replaceExited()
	f.stopAll()

	tl := tallyIncidents(r.sim.Incidents(), items)
	imports := r.sim.ImportCount()
	skipped := f.count("redelivery already ticketed; acknowledging without a post")
	aborted := 0 // import requests whose client died before the answer
	for _, rq := range r.sim.Requests() {
		if strings.HasPrefix(rq.Path, "/api/now/import/") && rq.Status == 0 {
			aborted++
		}
	}
	t.Logf("kills %d: incidents %d, updates (crash-window re-posts) %d, imports %d (%d cut off by a kill), redeliveries acked from the ledger without a post %d",
		f.kills, tl.incidents, tl.updates, imports, aborted, skipped)
	if tl.incidents != nItems || len(tl.lost) > 0 || tl.foreign > 0 {
		t.Errorf("%d incidents for %d items (lost: %s; %d of unknown items)", tl.incidents, nItems, firstFew(tl.lost, 10), tl.foreign)
	}
	if tl.duplicates() > 0 {
		t.Errorf("duplicated incidents: %s %s", firstFew(tl.multiInsert, 10), firstFew(tl.dupCorr, 10))
	}
	if n := len(r.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	// Each kill can cost at most one re-send per message in flight (concurrency),
	// plus a little slack for a request that was already on its way.
	if limit := nItems + f.kills*concurrency + 5; imports > limit {
		t.Errorf("%d import requests for %d items and %d kills, want at most %d", imports, nItems, f.kills, limit)
	}
	if tl.updates > imports-nItems {
		t.Errorf("%d updates but only %d import requests beyond the items", tl.updates, imports-nItems)
	}
	if t.Failed() {
		t.Logf("process output:\n%s", f.logsTail(40))
	}
}
