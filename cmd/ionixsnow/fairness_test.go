package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
)

// TestTenantsTakeTurnsWithTheProcessPosts: with consumer.process_concurrency 2, the
// posts of three tenants never number more than 2 at once; two tenants with backlogs
// do not queue a third tenant's few items behind them: the slots go to the tenants
// that wait in turn, so each of its items waits for about one post of each backlog.
func TestTenantsTakeTurnsWithTheProcessPosts(t *testing.T) {
	t.Parallel()
	h := rvStart(t)
	h.cfg.Consumer.ProcessConcurrency = 2
	h.cfg.Consumer.Concurrency = 2
	posts := &inFlight{}
	ins := map[string]*rvInstance{}
	for _, id := range []string{"big1", "big2", "small"} {
		in := rvNewInstance(t, id)
		in.delay.Store(int64(10 * time.Millisecond))
		in.inFlight.Store(posts)
		h.put(id, in.settings(), true)
		ins[id] = in
	}
	const backlog, few = 120, 6
	stop := h.serve(nil)
	h.publishAsync("big1", "b1", backlog)
	h.publishAsync("big2", "b2", backlog)
	incidents := func(id string) int { return len(ins[id].sim.Incidents()) }
	testkit.WaitForDiag(t, 30*time.Second, "both backlogs draining", func() bool { return incidents("big1") >= 10 && incidents("big2") >= 10 },
		func() string { return fmt.Sprintf("%d and %d of %d", incidents("big1"), incidents("big2"), backlog) })
	h.publishAsync("small", "s", few)
	testkit.WaitForDiag(t, 30*time.Second, "the small tenant's items sent", func() bool { return incidents("small") == few },
		func() string { return fmt.Sprintf("%d of %d", incidents("small"), few) })
	testkit.WaitForDiag(t, 60*time.Second, "both backlogs sent", func() bool { return incidents("big1") == backlog && incidents("big2") == backlog },
		func() string { return fmt.Sprintf("%d and %d of %d", incidents("big1"), incidents("big2"), backlog) })
	if err := stop(); err != nil {
		t.Errorf("runServed: %v", err)
	}
	// The posts of the backlogs between the small tenant's first and last.
	order := posts.arrivals()
	first, last := slices.Index(order, "small"), -1
	for i, in := range order {
		if in == "small" {
			last = i
		}
	}
	between := 0
	for _, in := range order[first:last] {
		if in != "small" {
			between++
		}
	}
	t.Logf("posts of the backlogs between the small tenant's first and last of %d: %d; most posts at once: %d", few, between, posts.most.Load())
	// In turn, each further small item waits for about one post of each backlog
	// (9-11 here on a quiet machine); behind the backlogs it would wait for some 200.
	if limit := 4 * few; between > limit {
		t.Errorf("the backlogs made %d posts while the small tenant's %d items were sent, want at most %d", between, few, limit)
	}
	if most := posts.most.Load(); most > 2 {
		t.Errorf("%d posts at once, consumer.process_concurrency is 2", most)
	}
}
