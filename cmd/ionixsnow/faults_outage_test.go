package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestServiceNowOutageWithTwoProcesses switches a 503 outage on at the emulator
// once items flow through two consume processes: both pause (and say so), probe at
// most once per backoff interval, resume on their own after the outage, and every
// item arrives with nothing dead-lettered.
func TestServiceNowOutageWithTwoProcesses(t *testing.T) {
	const (
		nBefore     = 10
		nDuring     = 40
		nProcs      = 2
		concurrency = 4
		maxBackoff  = time.Second
		outageFor   = 4 * time.Second
	)
	r := newFaultRig(t, emulator.Options{},
		"IONIXSNOW_CONSUMER_CONCURRENCY="+strconv.Itoa(concurrency),
		"IONIXSNOW_CONSUMER_MAX_BACKOFF="+maxBackoff.String(),
		"IONIXSNOW_CONSUMER_ACK_WAIT=5s")
	items := faultItems("outage", nBefore+nDuring, 17)
	f := newFleet(t, r.env, nProcs)
	pub := publisher.New(r.js, "")
	publish := func(items []ionix.ActionItem) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, it := range items {
			if err := publishItem(ctx, pub, it); err != nil {
				t.Fatal(err)
			}
		}
	}
	diag := func() string {
		tl := tallyIncidents(r.sim.Incidents(), items)
		return fmt.Sprintf("%d of %d incidents; %s; emulator outage %+v\n%s",
			tl.incidents, len(items), r.consumerState(), r.sim.Config().Outage, f.logsTail(30))
	}

	publish(items[:nBefore])
	testkit.WaitForDiag(t, 20*time.Second, "the first items to become incidents", func() bool {
		return len(r.sim.Incidents()) >= nBefore
	}, diag)

	// The outage: every request answers 503 for outageFor, then the emulator ends it.
	cfg := r.sim.Config()
	cfg.Outage = emulator.Outage{Mode: emulator.Outage503, For: emulator.Duration(outageFor)}
	if err := r.sim.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	outageEnd := r.sim.Config().Outage.Until
	publish(items[nBefore:])
	for _, p := range f.procs {
		testkit.WaitForDiag(t, outageFor, "both processes to pause sending", func() bool {
			return len(logLines(p, msgPaused)) > 0
		}, diag)
	}
	testkit.WaitForDiag(t, outageFor+5*time.Second, "the outage to end", func() bool {
		return r.sim.Config().Outage.Mode == emulator.OutageOff
	}, diag)
	testkit.WaitForDiag(t, 20*time.Second, "every item to become an incident", func() bool {
		return len(r.sim.Incidents()) >= len(items)
	}, diag)
	for _, p := range f.procs {
		testkit.WaitForDiag(t, 5*time.Second, "both processes to log that sending resumed", func() bool {
			return len(logLines(p, msgResumed)) > 0
		}, diag)
	}
	testkit.WaitForDiag(t, 10*time.Second, "the consumer to settle every message", r.consumerIdle, diag)
	f.stopAll()

	tl := tallyIncidents(r.sim.Incidents(), items)
	if tl.incidents != len(items) || tl.duplicates() > 0 {
		t.Errorf("%d incidents for %d items (lost %s; duplicated %s %s)", tl.incidents, len(items),
			firstFew(tl.lost, 10), firstFew(tl.multiInsert, 5), firstFew(tl.dupCorr, 5))
	}
	if n := len(r.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters after an outage, want none", n)
	}

	var failed, recovered int
	var firstOK time.Time
	for _, rq := range r.sim.Requests() {
		if !strings.HasPrefix(rq.Path, "/api/now/import/") {
			continue
		}
		switch {
		case strings.Contains(rq.Fault, "outage"):
			failed++
		case rq.Status == 201 && rq.At.After(outageEnd):
			recovered++
			if firstOK.IsZero() {
				firstOK = rq.At
			}
		}
	}
	// Per process: the posts in flight when the outage began, then at most one probe
	// per backoff interval while it lasts, plus the one that meets its end.
	limit := nProcs * (concurrency + int(outageFor/maxBackoff) + 1)
	resumeAfter := firstOK.Sub(outageEnd)
	var perProc []string
	maxProbes := int(outageFor / maxBackoff)
	for _, p := range f.all {
		probes := len(logLines(p, msgStillFailing))
		perProc = append(perProc, fmt.Sprintf("pid %d: %d failures while paused", p.cmd.Process.Pid, probes))
		if probes > maxProbes {
			t.Errorf("pid %d: %d failed probes during a %s outage, want at most one per %s (%d): %v", p.cmd.Process.Pid, probes, outageFor, maxBackoff, maxProbes, logLines(p, msgStillFailing))
		}
	}
	t.Logf("outage %s: %d failed import requests (limit %d; %s); first accepted import %s after the outage ended; pauses logged %d, resumes %d",
		outageFor, failed, limit, strings.Join(perProc, "; "), resumeAfter.Round(time.Millisecond), f.count(msgPaused), f.count(msgResumed))
	if failed == 0 {
		t.Error("no import request met the outage; the test did not test it")
	}
	if failed > limit {
		t.Errorf("%d import requests failed during a %s outage, want at most %d (2 processes × (concurrency + one probe per %s + 1))",
			failed, outageFor, limit, maxBackoff)
	}
	if firstOK.IsZero() {
		t.Error("no import was accepted after the outage")
	} else if resumeAfter > maxBackoff+2*time.Second {
		t.Errorf("sending resumed %s after the outage ended, want within one backoff interval (%s) and a little", resumeAfter, maxBackoff)
	}
	for _, p := range f.all {
		for _, e := range logLines(p, msgPaused) {
			if e["level"] != "warn" {
				t.Errorf("pause logged at level %v, want warn: %v", e["level"], e)
			}
		}
	}
	if t.Failed() {
		t.Logf("process output:\n%s", f.logsTail(60))
	}
}
