package consumer_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestAHighItemOvertakesABacklog is the acceptance test of SPEC §10 with the cap scaled
// down (20 per 3 s, paced, one slot held for High items): a backlog of 100 Low items
// spends the window; a High item published then reaches ServiceNow within 3 s and
// before any further Low item; the Low items still all arrive, in stream order, and
// no window holds more than the cap. With one replica and with three (the order is
// global: each follows the stream, the grants are shared).
func TestAHighItemOvertakesABacklog(t *testing.T) {
	t.Parallel()
	const limit = 20
	for _, tc := range []struct {
		name     string
		replicas int
		before   int // imports before the High item is published
		opts     []budget.Option
	}{
		{"1 replica", 1, limit - 1, nil},
		{"3 replicas", 3, limit - 1, nil},
		// As the configuration's defaults give a cap of 20: no slot held for High
		// items (max_per_window/50); the pace and the pull loop yielding suffice.
		{"1 replica, no reserve", 1, limit - 1, []budget.Option{budget.WithReserve(0)}},
		{"3 replicas, no reserve", 3, limit - 1, []budget.Option{budget.WithReserve(0)}},
		// Published once the window is full (a loaded machine's timing): the High
		// item waits for the next free slot, which every replica's pull loop would
		// ask for too — not only the one whose lane holds the item's claim.
		{"3 replicas, no reserve, the window full", 3, limit, []budget.Option{budget.WithReserve(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			overtake(t, tc.replicas, tc.before, tc.opts...)
		})
	}
}

func overtake(t *testing.T, replicas, before int, opts ...budget.Option) {
	const (
		limit   = 20
		window  = 3 * time.Second
		backlog = 100
	)
	e := newLaneRig(t)
	sim := e.sim
	publish := func(id string, urgency float64) time.Time {
		t.Helper()
		at := time.Now()
		e.publish(id, urgency)
		return at
	}
	for i := range backlog {
		publish(fmt.Sprintf("low-%03d", i), 3)
	}
	for range replicas {
		e.replica(limit, window, nil, opts...)
	}
	imports := func() []emulator.Request {
		var out []emulator.Request
		for _, r := range sim.Requests() {
			if strings.HasPrefix(r.Path, "/api/now/import/") {
				out = append(out, r)
			}
		}
		return out
	}
	testkit.WaitFor(t, 20*time.Second, "the backlog to spend the window", func() bool { return sim.ImportCount() >= before })
	published := publish("high-1", 9.5)
	testkit.WaitFor(t, 10*time.Second, "the High item imported", func() bool {
		return slices.ContainsFunc(sim.Incidents(), func(in emulator.Incident) bool { return in.CorrelationID == "ionix:high-1" })
	})
	testkit.WaitForDiag(t, 60*time.Second, "every Low item imported", func() bool { return len(sim.Incidents()) == backlog+1 },
		func() string { return fmt.Sprintf("%d of %d incidents", len(sim.Incidents()), backlog+1) })

	var highAt time.Time
	var lowOrder []string
	lowAfterPublish := 0 // Low imports between the High item's publish and its import
	all := imports()
	for _, r := range all {
		if correlationOf(r) == "high-1" && highAt.IsZero() {
			highAt = r.At
		}
	}
	for _, r := range all {
		id := correlationOf(r)
		if !strings.HasPrefix(id, "low-") {
			continue
		}
		lowOrder = append(lowOrder, id)
		if r.At.After(published) && r.At.Before(highAt) {
			lowAfterPublish++
		}
	}
	wait := highAt.Sub(published)
	t.Logf("%d replica(s): High item imported %s after its publish, %d Low import(s) in between; %d imports for %d items",
		replicas, wait.Round(time.Millisecond), lowAfterPublish, len(all), backlog+1)
	if wait > 3*time.Second {
		t.Errorf("the High item waited %s behind the backlog, want at most 3s", wait)
	}
	// One Low import may already be on its way when the High item is published.
	if lowAfterPublish > 1 {
		t.Errorf("%d Low items were imported after the High item was published and before it", lowAfterPublish)
	}
	if !inStreamOrder(lowOrder, laneConcurrency) {
		var failed []string // posts that failed go back to the stream: order is lost for them
		for _, r := range all {
			if r.Status != 200 && r.Status != 201 {
				failed = append(failed, fmt.Sprintf("%s %d", correlationOf(r), r.Status))
			}
		}
		t.Errorf("the Low items were not imported in stream order: %v (failed imports: %v)", lowOrder, failed)
	}
	if n := len(lowOrder); n != backlog {
		t.Errorf("%d Low imports for %d Low items", n, backlog)
	}
	at := make([]time.Time, len(all))
	for i, r := range all {
		at[i] = r.At
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	for i := 0; i+limit < len(at); i++ {
		if gap := at[i+limit].Sub(at[i]); gap < window {
			t.Errorf("imports %d..%d are %s apart: %d in a window of %s, cap %d", i, i+limit, gap, limit+1, window, limit)
		}
	}
}

// correlationOf is the action item id an import request was for.
func correlationOf(r emulator.Request) string {
	return strings.TrimPrefix(r.Fields["u_correlation_id"], "ionix:")
}

// expressReplicaWith runs one replica with the express lane, as consume does: a
// paced budget holding slots for High items (by default a burst of 1 and one slot),
// the lanes' claims in the budget's bucket; its importer wrapped by wrap (nil: none).
// laneConcurrency is the posts each replica of the lane tests makes at once.
const laneConcurrency = 4

// inStreamOrder reports whether ids (named in stream order) arrived in stream order
// as far as posts side by side allow (README): none more than concurrency − 1
// places from its own.
func inStreamOrder(ids []string, concurrency int) bool {
	sorted := slices.Sorted(slices.Values(ids))
	for i, id := range ids {
		if j, _ := slices.BinarySearch(sorted, id); i-j >= concurrency || j-i >= concurrency {
			return false
		}
	}
	return true
}

func expressReplicaWith(t testing.TB, natsURL, snowURL string, limit int, window time.Duration, wrap func(consumer.Importer) consumer.Importer, opts ...budget.Option) {
	t.Helper()
	// A margin that covers a loaded machine's delay from grant to ServiceNow.
	startReplica(t, natsURL, snowURL, replicaSpec{limit: limit, window: window, wrap: wrap, express: true,
		budget:  append([]budget.Option{budget.WithMargin(time.Second), budget.WithPacing(1), budget.WithReserve(1)}, opts...),
		options: consumer.Options{Concurrency: laneConcurrency, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond, Express: true}})
}

// TestBandsGoInOrderAndVersionsNeverGoBack: under a backlog of Low items, a High
// version of an item that waits in the backlog as Low goes first, then the Medium
// items in stream order, then the rest of the Low ones in stream order; the item's
// older Low version, delivered later, is superseded — its incident never goes back.
func TestBandsGoInOrderAndVersionsNeverGoBack(t *testing.T) {
	t.Parallel()
	const (
		limit   = 20
		window  = 2 * time.Second
		backlog = 40
	)
	e := newLaneRig(t)
	sim, publish := e.sim, e.publishTitled
	for i := range backlog {
		id := fmt.Sprintf("low-%03d", i)
		if i == backlog-8 {
			id = "x" // near the end of the backlog: still waiting when its new version comes
		}
		publish(id, "Finding "+id, 3)
	}
	e.replica(limit, window, nil)
	testkit.WaitFor(t, 20*time.Second, "the backlog to spend the window", func() bool { return sim.ImportCount() >= limit-1 })
	publish("x", "Finding x, now actively exploited", 9.6)
	publish("med-1", "Finding med-1", 7.5)
	publish("med-2", "Finding med-2", 8)
	testkit.WaitForDiag(t, 60*time.Second, "every item sent", func() bool { return len(sim.Incidents()) == backlog+2 },
		func() string { return fmt.Sprintf("%d of %d incidents", len(sim.Incidents()), backlog+2) })

	var order []string // the ids imported after the new items were published, in order
	started := false
	xTitles := []string{}
	for _, r := range sim.Requests() {
		if !strings.HasPrefix(r.Path, "/api/now/import/") {
			continue
		}
		id := correlationOf(r)
		if id == "x" {
			xTitles = append(xTitles, r.Fields["u_name"])
		}
		if id == "x" || id == "med-1" {
			started = true
		}
		if started {
			order = append(order, id)
		}
	}
	t.Logf("imports from the first overtaking one: %v", order[:min(len(order), 6)])
	if len(order) < 3 || order[0] != "x" || order[1] != "med-1" || order[2] != "med-2" {
		t.Errorf("imports after the new items were published begin %v, want x (High), med-1, med-2 (Medium in stream order), then Low", order[:min(len(order), 5)])
	}
	var lows []string
	for _, id := range order[min(3, len(order)):] {
		if strings.HasPrefix(id, "low-") {
			lows = append(lows, id)
		}
	}
	if !inStreamOrder(lows, laneConcurrency) {
		t.Errorf("the Low items after them were not in stream order: %v", lows)
	}
	if len(xTitles) != 1 || xTitles[0] != "Finding x, now actively exploited" {
		t.Errorf("item x was imported as %q, want once, as its newest version", xTitles)
	}
	for _, in := range sim.Incidents() {
		if in.CorrelationID == "ionix:x" && in.ShortDescription != "Finding x, now actively exploited" {
			t.Errorf("item x's incident says %q: an older version went after the newer", in.ShortDescription)
		}
	}
}
