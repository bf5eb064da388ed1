package budget_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
)

// TestGrantFreshForHalfTheMargin: a send may start up to half the margin after its
// grant (the other half is for the request to reach ServiceNow); later, its grant is
// stale and must be renewed.
func TestGrantFreshForHalfTheMargin(t *testing.T) {
	kv := budgetBucket(t, budgetServer(t, t.TempDir(), "").ClientURL())
	var now atomic.Int64
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	now.Store(start.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	b := newBudget(t, kv, 10, time.Minute, budget.WithMargin(4*time.Second), budget.WithClock(clock))
	g, err := b.AcquireGrant(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after time.Duration
		fresh bool
	}{
		{0, true},
		{time.Second, true},
		{2*time.Second - time.Millisecond, true},
		{2 * time.Second, false},
		{time.Hour, false},
	} {
		now.Store(g.At.Add(tc.after).UnixNano())
		if got := b.Fresh(g); got != tc.fresh {
			t.Errorf("%s after the grant: fresh %v, want %v", tc.after, got, tc.fresh)
		}
	}
	if !(budget.Unlimited{}).Fresh(budget.Grant{N: 1, At: start.Add(-time.Hour)}) {
		t.Error("Unlimited grants go stale")
	}
}
