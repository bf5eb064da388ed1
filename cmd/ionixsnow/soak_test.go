//go:build soak

package main

// The soak test: SOAK_ITEMS items (default 10,000) published while a seeded chaos
// loop kills consume processes with SIGKILL, switches ServiceNow outages on and
// restarts the NATS server once. Every item must end as exactly one incident.
//
//	go test -tags soak -run TestSoak -count=1 -timeout 30m -v ./cmd/ionixsnow/
//
// or scripts/soak. SOAK_SEED repeats a run's chaos; SOAK_RATE sets the publish rate
// (items per second, default 200), which sets how long the chaos lasts.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

func soakEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func TestSoak(t *testing.T) {
	const (
		nProcs      = 3
		concurrency = 8
		ackWait     = 3 * time.Second
		maxBackoff  = 2 * time.Second
	)
	start := time.Now()
	nItems := soakEnvInt(t, "SOAK_ITEMS", 10000)
	rate := soakEnvInt(t, "SOAK_RATE", 200)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
		seed = s
	}
	fmt.Printf("soak: seed=%d items=%d rate=%d/s processes=%d concurrency=%d ack_wait=%s max_backoff=%s\n",
		seed, nItems, rate, nProcs, concurrency, ackWait, maxBackoff)
	rng := rand.New(rand.NewPCG(seed, 0x50a4))

	env := []string{
		"IONIXSNOW_CONSUMER_CONCURRENCY=" + strconv.Itoa(concurrency),
		"IONIXSNOW_CONSUMER_ACK_WAIT=" + ackWait.String(),
		"IONIXSNOW_CONSUMER_MAX_BACKOFF=" + maxBackoff.String(),
		"IONIXSNOW_CONSUMER_DRAIN_TIMEOUT=5s",
	}
	if os.Getenv("SOAK_RESOLVE_ON_CLOSE") != "" { // every opened event looks in the ledger first
		env = append(env, "IONIXSNOW_CONSUMER_RESOLVE_ON_CLOSE=true")
	}
	r := newFaultRig(t, emulator.Options{Seed: int64(seed)}, env...)
	items := faultItems("soak", nItems, int64(seed))
	f := newFleet(t, r.env, nProcs)

	// Publish in the background at the given rate, retrying each item (same message
	// id, so a publish that was stored but not acknowledged is not stored twice)
	// while NATS restarts.
	var published, pubRetries atomic.Int64
	pubDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		p := publisher.New(r.js, "")
		interval := time.Second / time.Duration(rate)
		next := time.Now()
		for _, it := range items {
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d): // pacing
				case <-ctx.Done():
					pubDone <- ctx.Err()
					return
				}
			}
			next = next.Add(interval)
			deadline := time.Now().Add(2 * time.Minute)
			for {
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				err := publishItem(pctx, p, it)
				pcancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil || time.Now().After(deadline) {
					pubDone <- fmt.Errorf("publish %s after %d items: %w", it.ID, published.Load(), err)
					return
				}
				pubRetries.Add(1)
				select {
				case <-time.After(100 * time.Millisecond): // retry delay while NATS is away
				case <-ctx.Done():
				}
			}
			published.Add(1)
		}
		pubDone <- nil
	}()

	// Chaos until everything is published: mostly SIGKILL of a random consumer (a new
	// one takes its place), sometimes a ServiceNow outage of 1–3 s (503 or reset
	// connections), and once a restart of the NATS server on its port and store.
	var outages, natsRestarts int
	restartAt := int64(float64(nItems) * (0.3 + 0.4*rng.Float64()))
	for done := false; !done; {
		timer := time.NewTimer(time.Duration(400+rng.IntN(1000)) * time.Millisecond)
		select {
		case err := <-pubDone:
			timer.Stop()
			if err != nil {
				t.Fatal(err)
			}
			done = true
			if natsRestarts > 0 {
				continue
			}
		case <-timer.C:
		}
		f.replaceExited()
		switch roll := rng.IntN(100); {
		case natsRestarts == 0 && (done || published.Load() >= restartAt):
			t.Logf("restarting NATS after %d items published", published.Load())
			r.restartNATS(t)
			natsRestarts++
		case roll < 35 && r.sim.Config().Outage.Mode == emulator.OutageOff:
			mode := emulator.Outage503
			if rng.IntN(2) == 0 {
				mode = emulator.OutageReset
			}
			d := time.Second + time.Duration(rng.IntN(2001))*time.Millisecond
			cfg := r.sim.Config()
			cfg.Outage = emulator.Outage{Mode: mode, For: emulator.Duration(d)}
			if err := r.sim.SetConfig(cfg); err != nil {
				t.Fatal(err)
			}
			outages++
		case roll < 90:
			f.waitConsuming()
			f.kill9(rng.IntN(len(f.procs)))
		}
	}
	cfg := r.sim.Config()
	cfg.Outage = emulator.Outage{}
	if err := r.sim.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	chaosEnd := time.Now()
	t.Logf("chaos over after %s: %d published (%d publish retries), %d kills, %d outages, %d NATS restarts",
		chaosEnd.Sub(start).Round(time.Second), published.Load(), pubRetries.Load(), f.kills, outages, natsRestarts)

	// Wait until every item has an incident, or progress stalls for a minute, within
	// five minutes.
	const stallAfter, drainDeadline = time.Minute, 5 * time.Minute
	last, lastAt := -1, time.Now()
	for {
		tl := tallyIncidents(r.sim.Incidents(), items)
		if len(tl.lost) == 0 {
			break
		}
		if tl.incidents != last {
			last, lastAt = tl.incidents, time.Now()
		}
		if time.Since(lastAt) > stallAfter || time.Since(chaosEnd) > drainDeadline {
			t.Errorf("%d of %d items have no incident; no progress for %s (%s)", len(tl.lost), nItems,
				time.Since(lastAt).Round(time.Second), r.consumerState())
			break
		}
		f.replaceExited()
		time.Sleep(250 * time.Millisecond)
	}
	// Let redeliveries settle so that the update count is final.
	idleBy := time.Now().Add(time.Minute)
	for !r.consumerIdle() && time.Now().Before(idleBy) {
		time.Sleep(250 * time.Millisecond)
	}
	settled := r.consumerState()
	f.replaceExited()
	f.stopAll()

	tl := tallyIncidents(r.sim.Incidents(), items)
	dls := r.deadLetters(t)
	lost, dups := len(tl.lost), tl.duplicates()
	fmt.Printf("soak: items=%d incidents=%d lost=%d duplicates=%d updates=%d kills=%d outages=%d nats_restarts=%d elapsed=%s\n",
		nItems, tl.incidents, lost, dups, tl.updates, f.kills, outages, natsRestarts, time.Since(start).Round(100*time.Millisecond))
	fmt.Printf("soak: imports=%d dead_letters=%d publish_retries=%d processes_started=%d drain=%s %s\n",
		r.sim.ImportCount(), len(dls), pubRetries.Load(), len(f.all), time.Since(chaosEnd).Round(100*time.Millisecond), settled)

	if lost > 0 {
		t.Errorf("%d items lost: %s", lost, firstFew(tl.lost, 20))
		for _, id := range tl.lost[:min(5, len(tl.lost))] {
			t.Logf("what the processes logged about %s:\n%s", id, grepLogs(f, id, 20))
		}
	}
	if dups > 0 {
		t.Errorf("%d duplicated incidents: %s %s", dups, firstFew(tl.multiInsert, 20), firstFew(tl.dupCorr, 20))
	}
	if len(dls) > 0 {
		t.Logf("%d dead letters, first reason: %s", len(dls), dls[0].Header.Get("Ionix-Dlq-Reason"))
	}
}

// grepLogs returns the last limit log lines of every process that mention s.
func grepLogs(f *fleet, s string, limit int) string {
	var out []string
	for _, p := range f.all {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(line, s) {
				out = append(out, fmt.Sprintf("pid %d: %s", p.cmd.Process.Pid, line))
			}
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	if len(out) == 0 {
		return "(nothing)"
	}
	return strings.Join(out, "\n")
}

// restartNATS stops the server and starts it again on the same address and store.
func (r *faultRig) restartNATS(t *testing.T) {
	t.Helper()
	r.ns.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var ns *embedded.Server
		if ns, err = embedded.Start(embedded.Options{Listen: r.listen, StoreDir: r.storeDir}); err == nil {
			r.ns = ns
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may still be held by the old listener
	}
	t.Fatalf("NATS did not restart on %s: %v", r.listen, err)
}
