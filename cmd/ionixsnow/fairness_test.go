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
// (16 workers each, all waiting for a slot) do not queue a third tenant's items
// behind their workers: the slots go to the tenants that wait in turn, so its first
// item waits for about one post of each backlog, not for 32.
func TestTenantsTakeTurnsWithTheProcessPosts(t *testing.T) {
	t.Parallel()
	h := rvStart(t)
	h.cfg.Consumer.ProcessConcurrency = 2
	h.cfg.Consumer.Concurrency = 16
	posts := &inFlight{}
	ins := map[string]*rvInstance{}
	for _, id := range []string{"big1", "big2", "small"} {
		in := rvNewInstance(t, id)
		in.delay.Store(int64(10 * time.Millisecond))
		in.inFlight.Store(posts)
		st := in.settings()
		st.Cap.MaxPerWindow = 1_000_000 // the process's posts, not the cap, are shared here
		h.put(id, st, true)
		ins[id] = in
	}
	const backlog, few = 200, 6
	stop := h.serve(nil)
	h.publishAsync("big1", "b1", backlog)
	h.publishAsync("big2", "b2", backlog)
	incidents := func(id string) int { return len(ins[id].sim.Incidents()) }
	testkit.WaitForDiag(t, 30*time.Second, "both backlogs draining", func() bool { return incidents("big1") >= 20 && incidents("big2") >= 20 },
		func() string { return fmt.Sprintf("%d and %d of %d", incidents("big1"), incidents("big2"), backlog) })
	publishedAt := len(posts.arrivals())
	h.publishAsync("small", "s", few)
	testkit.WaitForDiag(t, 30*time.Second, "the small tenant's items sent", func() bool { return incidents("small") == few },
		func() string { return fmt.Sprintf("%d of %d", incidents("small"), few) })
	testkit.WaitForDiag(t, 60*time.Second, "both backlogs sent", func() bool { return incidents("big1") == backlog && incidents("big2") == backlog },
		func() string { return fmt.Sprintf("%d and %d of %d", incidents("big1"), incidents("big2"), backlog) })
	if err := stop(); err != nil {
		t.Errorf("runServed: %v", err)
	}
	// The backlogs' posts from the publish of the small tenant's items to its first.
	order := posts.arrivals()[publishedAt:]
	before := slices.Index(order, "small")
	t.Logf("posts of the two backlogs before the small tenant's first, after its items were published: %d; most posts at once: %d", before, posts.most.Load())
	// In turn: the posts in flight, one of each backlog, and what the small
	// tenant's pull takes (its doorbell, a grant, the fetch: a few 10 ms posts).
	// Queued behind the backlogs' 32 waiting workers it would be some 30.
	if limit := 12; before > limit {
		t.Errorf("the backlogs made %d posts before the small tenant's first, want at most %d", before, limit)
	}
	if most := posts.most.Load(); most > 2 {
		t.Errorf("%d posts at once, consumer.process_concurrency is 2", most)
	}
}
