package main

// SPEC §10 with tenants (§9), at the process level: the real `consume` binary (one
// process, and two serving the same tenants), a real nats-server in this process and
// one ServiceNow emulator per tenant over loopback HTTP, the tenants put and activated
// with the binary as an operator would.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// TestTenantsUrgencyFirstUnderTheirOwnCaps: tenant acme has a cap scaled down to 20
// per 5 s (the deployment's default pacing: even, a burst of 1, no slot held for High
// items below a cap of 50) and a backlog of 60 Low items; tenant globex has its own
// instance and a larger cap. Once acme's backlog has spent its window:
//   - `status --tenant acme --json` and `status --all --json` show acme's Low backlog
//     (backlog_by_urgency) and its drain ETA, each tenant with its own cap;
//   - globex's items reach its instance within 2 s of their publish: acme's backlog
//     does not hold them up;
//   - a High item of acme (urgency 9.5) reaches acme's instance within 3 s of its
//     publish, and no further Low item of acme goes before it (one already on its way,
//     arriving within 100 ms of the publish, may);
//   - every Low item of acme arrives, once, in stream order, and no sliding window of
//     5 s holds more than 20 of acme's imports, by the emulator's clock.
//
// With one consume process, and with two serving the same tenants (the order and the
// cap are the tenant's, not a process's).
func TestTenantsUrgencyFirstUnderTheirOwnCaps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		procs int
	}{
		{"one consume", 1},
		{"two consumes", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tenantsUrgencyFirst(t, tc.procs)
		})
	}
}

// urgencyStatus is what the test reads of one tenant's `status --json`.
type urgencyStatus struct {
	Tenant string `json:"tenant"`
	Budget struct {
		Used  int `json:"used"`
		Limit int `json:"limit"`
	} `json:"budget"`
	BacklogByUrgency  map[string]uint64 `json:"backlog_by_urgency"`
	DrainETAByUrgency map[string]int64  `json:"drain_eta_by_urgency"`
}

// importRequests are the instance's import requests (POSTs to the import set API), by
// the time they arrived.
func importRequests(sim *emulator.Server) []emulator.Request {
	var out []emulator.Request
	for _, r := range sim.Requests() {
		if r.Method == "POST" && strings.HasPrefix(r.Path, "/api/now/import/") {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b emulator.Request) int { return a.At.Compare(b.At) })
	return out
}

func tenantsUrgencyFirst(t *testing.T, procs int) {
	const (
		limit   = 20
		window  = 5 * time.Second
		backlog = 60
		nGlobex = 10
		// The deadlines of SPEC §10 and the package tests (consumer/urgency_test.go).
		highWait   = 3 * time.Second
		globexWait = 2 * time.Second
	)
	dep := newDeployment(t)
	acme, globex := newCustomer(t, "acme"), newCustomer(t, "globex")
	dep.addTenant(acme, acme.settingsFile(t, dep.dir, 1, fmt.Sprintf("cap: {max_per_window: %d, window: %s}\n", limit, window)))
	dep.addTenant(globex, globex.settingsFile(t, dep.dir, 1, "cap: {max_per_window: 1000, window: 10s}\n"))

	// acme's backlog, published as an operator would, in stream order low-000, low-001, …
	lows := make([]string, backlog)
	for i := range lows {
		lows[i] = fmt.Sprintf("low-%03d", i)
	}
	if out := dep.mustRun(dep.env, "publish", "--tenant", "acme", "--file", itemsFile(t, dep.dir, "acme-low.ndjson", "acme", 3, lows...)); !strings.Contains(out, fmt.Sprintf("published %d, duplicate 0", backlog)) {
		t.Fatalf("publish --tenant acme:\n%s", out)
	}

	// The consume processes, each started once the one before serves both tenants
	// (see newFleet on nats-server's race between two processes setting up).
	var ps []*proc
	for range procs {
		p := startConsume(t, "", dep.env)
		ps = append(ps, p)
		testkit.WaitForDiag(t, 20*time.Second, "consume to serve acme and globex", func() bool {
			return len(logLines(p, "consuming for the tenant")) >= 2
		}, func() string { return tailLines(p.logs.String(), 30) })
	}
	logs := func() string {
		var b strings.Builder
		for _, p := range ps {
			fmt.Fprintf(&b, "--- consume pid %d ---\n%s\n", p.cmd.Process.Pid, tailLines(p.logs.String(), 30))
		}
		return b.String()
	}
	acmeImports := func() string {
		var b strings.Builder
		for _, r := range importRequests(acme.sim) {
			fmt.Fprintf(&b, "  %s %s %d\n", r.At.Format("15:04:05.000"), correlationID(r), r.Status)
		}
		return b.String()
	}

	// checkCap reports every span of limit+1 of acme's imports shorter than the window
	// (by the emulator's clock), and returns the shortest.
	checkCap := func() time.Duration {
		t.Helper()
		imports := importRequests(acme.sim)
		tightest := time.Duration(1<<63 - 1)
		var over []string
		for i := 0; i+limit < len(imports); i++ {
			gap := imports[i+limit].At.Sub(imports[i].At)
			tightest = min(tightest, gap)
			if gap < window {
				over = append(over, fmt.Sprintf("%d..%d (%s..%s) %s apart", i, i+limit, correlationID(imports[i]), correlationID(imports[i+limit]), gap))
			}
		}
		if len(over) > 0 {
			t.Errorf("%d spans of %d of acme's imports fit in a window of %s, its cap is %d: %s", len(over), limit+1, window, limit, strings.Join(over[:min(len(over), 5)], "; "))
		}
		return tightest
	}

	// The backlog spends acme's window: the last window holds the whole cap. Paced
	// evenly, each slot the window frees from then on goes to the next Low item (the
	// pace and the window agree under a backlog), so a High item finds none free.
	spent := func() bool {
		n := 0
		for _, r := range importRequests(acme.sim) {
			if time.Since(r.At) < window {
				n++
			}
		}
		return n >= limit
	}
	testkit.WaitForDiag(t, 20*time.Second, "acme's backlog to spend its window", spent,
		func() string { return fmt.Sprintf("%d imports at acme\n%s", acme.sim.ImportCount(), logs()) })

	// status shows acme's Low backlog, by band, under its own cap.
	var one urgencyStatus
	out, code := runBinary(t, dep.env, "status", "--tenant", "acme", "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &one) != nil {
		t.Fatalf("status --tenant acme --json: exit %d\n%s", code, out)
	}
	if one.Budget.Limit != limit || one.BacklogByUrgency["low"] == 0 || one.BacklogByUrgency["high"] != 0 || one.DrainETAByUrgency["low"] <= 0 {
		t.Errorf("status --tenant acme --json while the backlog drains: limit %d, backlog_by_urgency %v, drain_eta_by_urgency %v; want limit %d, a Low backlog, no High one, a Low drain ETA\n%s",
			one.Budget.Limit, one.BacklogByUrgency, one.DrainETAByUrgency, limit, out)
	}
	var all struct {
		Tenants []urgencyStatus `json:"tenants"`
	}
	out, code = runBinary(t, dep.env, "status", "--all", "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &all) != nil {
		t.Fatalf("status --all --json: exit %d\n%s", code, out)
	}
	seen := map[string]urgencyStatus{}
	for _, ts := range all.Tenants {
		seen[ts.Tenant] = ts
	}
	if a := seen["acme"]; a.Budget.Limit != limit || a.BacklogByUrgency["low"] == 0 {
		t.Errorf("status --all --json: acme has limit %d, backlog_by_urgency %v; want limit %d and a Low backlog\n%s", a.Budget.Limit, a.BacklogByUrgency, limit, out)
	}
	if g := seen["globex"]; g.Budget.Limit != 1000 || g.BacklogByUrgency["low"] != 0 || g.BacklogByUrgency["high"] != 0 || g.BacklogByUrgency["medium"] != 0 {
		t.Errorf("status --all --json: globex has limit %d, backlog_by_urgency %v; want its own cap of 1000 and no backlog\n%s", g.Budget.Limit, g.BacklogByUrgency, out)
	}

	// Items published from the test, as `publish --tenant` does, at a known time.
	js := natstest.Connect(t, dep.natsURL)
	publish := func(tid, id string, urgency float64) time.Time {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"id": id, "title": tid + ": open port on " + id, "type": "Vulnerability", "urgency": urgency,
			"first_opened_at": "2026-11-20T10:15:00Z", "asset": id + ".example.com"})
		item, err := ionix.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		p := publisher.ForTenant(js, topology.DefaultNames().ForTenant(tid).ItemSubjectPrefix(), tid)
		at := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if dup, err := p.Publish(ctx, raw, item, ionix.EventOpened); err != nil || dup {
			t.Fatalf("publish %s of %s: duplicate %v, %v", id, tid, dup, err)
		}
		return at
	}
	firstImport := func(sim *emulator.Server, id string) (time.Time, bool) {
		for _, r := range importRequests(sim) {
			if correlationID(r) == id {
				return r.At, true
			}
		}
		return time.Time{}, false
	}

	// globex's items, while acme's backlog is held back by acme's cap.
	globexAt := map[string]time.Time{}
	for i := range nGlobex {
		id := fmt.Sprintf("g-%02d", i)
		globexAt[id] = publish("globex", id, 5)
	}
	testkit.WaitForDiag(t, 20*time.Second, "globex's items", func() bool { return len(importRequests(globex.sim)) >= nGlobex },
		func() string {
			return fmt.Sprintf("%d of %d at globex\n%s", len(importRequests(globex.sim)), nGlobex, logs())
		})
	worst := time.Duration(0)
	for id, at := range globexAt {
		got, ok := firstImport(globex.sim, id)
		if !ok {
			t.Fatalf("globex's %s has no import", id)
		}
		worst = max(worst, got.Sub(at))
	}
	if worst > globexWait {
		t.Errorf("globex's items reached its instance up to %s after their publish behind acme's backlog, want within %s", worst.Round(time.Millisecond), globexWait)
	}
	if waiting := backlog - len(importRequests(acme.sim)); waiting < limit {
		checkCap()
		t.Fatalf("only %d of acme's Low items still wait: too few for a High item to overtake", waiting)
	}

	// The High item of acme overtakes its backlog.
	highPublished := publish("acme", "crit-1", 9.5)
	testkit.WaitForDiag(t, 20*time.Second, "acme's High item imported", func() bool { _, ok := firstImport(acme.sim, "crit-1"); return ok },
		func() string { return fmt.Sprintf("acme's imports:\n%s\n%s", acmeImports(), logs()) })
	highAt, _ := firstImport(acme.sim, "crit-1")
	// A Low post granted before the High item was published may still be on its way:
	// it reaches ServiceNow within a post's latency on loopback. The pace spaces acme's
	// sends 250 ms apart, so a Low item that arrives later than onItsWay after the
	// publish took a slot that freed after it, one the High item was waiting for.
	const onItsWay = 100 * time.Millisecond
	var lowsBetween []string
	late := false
	for _, r := range importRequests(acme.sim) {
		if id := correlationID(r); strings.HasPrefix(id, "low-") && r.At.After(highPublished) && r.At.Before(highAt) {
			lowsBetween = append(lowsBetween, fmt.Sprintf("%s at +%s", id, r.At.Sub(highPublished).Round(time.Millisecond)))
			late = late || r.At.Sub(highPublished) > onItsWay
		}
	}
	wait := highAt.Sub(highPublished)
	if wait > highWait {
		t.Errorf("acme's High item reached its instance %s after its publish, want within %s\nacme's imports:\n%s", wait.Round(time.Millisecond), highWait, acmeImports())
	}
	if len(lowsBetween) > 1 || late {
		t.Errorf("acme's Low items went ahead of its High item: published at %s, it arrived %s later, after %v (a Low item may arrive within %s of the publish, one already on its way)",
			highPublished.Format("15:04:05.000"), wait.Round(time.Millisecond), lowsBetween, onItsWay)
	}
	lowsLeft := backlog + 1 - len(importRequests(acme.sim)) // Low items still waiting once the High one arrived

	// The rest of the backlog drains: every Low item once, in stream order, the cap
	// exact in every window (read once the processes have stopped, so that a late
	// duplicate would show).
	testkit.WaitForDiag(t, 40*time.Second, "acme's whole backlog imported", func() bool { return len(importRequests(acme.sim)) >= backlog+1 },
		func() string {
			return fmt.Sprintf("%d of %d at acme\n%s", len(importRequests(acme.sim)), backlog+1, logs())
		})
	for _, p := range ps {
		p.stop(t) // SIGTERM: what was in flight ends; nothing more is sent
	}
	imports := importRequests(acme.sim)
	var lowOrder []string
	var failed []string
	for _, r := range imports {
		if id := correlationID(r); strings.HasPrefix(id, "low-") {
			lowOrder = append(lowOrder, id)
		}
		if r.Status != 200 && r.Status != 201 {
			failed = append(failed, fmt.Sprintf("%s %d", correlationID(r), r.Status))
		}
	}
	if !slices.IsSorted(lowOrder) {
		t.Errorf("acme's Low items were not imported in stream order: %v (failed imports: %v)", lowOrder, failed)
	}
	if len(imports) != backlog+1 || len(lowOrder) != backlog {
		t.Errorf("%d imports at acme (%d of Low items) for %d items, want one each (failed imports: %v)", len(imports), len(lowOrder), backlog+1, failed)
	}
	tightest := checkCap()
	for _, c := range []*customer{acme, globex} {
		for _, in := range c.sim.Incidents() {
			if !strings.HasPrefix(in.ShortDescription, c.id+":") || in.Inserts != 1 {
				t.Errorf("%s: incident %q inserted %d times", c.id, in.ShortDescription, in.Inserts)
			}
		}
	}
	if n, m := len(globex.sim.Incidents()), len(importRequests(globex.sim)); n != nGlobex || m != nGlobex {
		t.Errorf("globex has %d incidents from %d imports, want its %d", n, m, nGlobex)
	}
	t.Logf("%d consume(s): globex's items within %s of their publish; acme's High item %s after its publish, ahead of %d Low items (Low imports in between: %v); acme's backlog drained %s after the first import; tightest %d+1 imports of acme: %s apart (window %s)",
		procs, worst.Round(time.Millisecond), wait.Round(time.Millisecond), lowsLeft, lowsBetween,
		imports[len(imports)-1].At.Sub(imports[0].At).Round(time.Millisecond), limit, tightest.Round(time.Millisecond), window)
	if t.Failed() {
		t.Logf("acme's imports:\n%s\n%s", acmeImports(), logs())
	}
}

// correlationID is the action item id an import request was for.
func correlationID(r emulator.Request) string {
	return strings.TrimPrefix(r.Fields["u_correlation_id"], "ionix:")
}
