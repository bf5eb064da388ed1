// Package budget caps the ServiceNow import requests of every replica together: at
// most max in any sliding window (SPEC §6). A Budget grants sends; KV keeps the
// count in one key of a JetStream KV bucket, shared through compare-and-swap and
// surviving restarts; Unlimited is the cap switched off.
package budget

import (
	"context"
	"time"
)

// Budget grants ServiceNow import requests. Every post, retries included, spends one
// grant; grants that end up unused (fewer messages than granted, filtered items,
// items already in the ledger) are given back.
type Budget interface {
	// Acquire blocks until at least one request is granted and returns how many were
	// granted, at most want.
	Acquire(ctx context.Context, want int) (int, error)
	// Release gives back n grants that were not spent.
	Release(ctx context.Context, n int) error
}

// Grant is what one Acquire granted: N sends, counted from At (KV counts
// them in the slice of its ledger that holds At).
type Grant struct {
	N  int
	At time.Time
	// Tight: right after it, an ordinary grant would have had to wait — the cap
	// binds, so a backlog is likely and an express lane may send ahead (SPEC §10).
	Tight bool
}

// Granter is a Budget that tells its grants apart, so that unused sends are
// given back exactly: Release(n) alone cannot know which Acquire they came from,
// and a sliding window must not give back a newer grant for an older one. A caller
// that holds the Grant of each fetch should use these two instead of Acquire and
// Release.
type Granter interface {
	Budget
	// AcquireGrant is Acquire returning the grant.
	AcquireGrant(ctx context.Context, want int) (Grant, error)
	// ReleaseGrant gives back n unused sends of g.
	ReleaseGrant(ctx context.Context, g Grant, n int) error
	// Fresh reports whether a send of g started now is still within the delay the
	// budget allows between a grant and its request: a send held longer (a message
	// pulled ahead, waiting for a worker) gives its grant back and takes a fresh
	// one, or a window could hold more than the cap.
	Fresh(g Grant) bool
}

// Unlimited is a Budget that grants everything at once (the cap switched off).
type Unlimited struct{}

var _ Granter = Unlimited{}

// Acquire grants want.
func (Unlimited) Acquire(ctx context.Context, want int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return want, nil
}

// Release does nothing.
func (Unlimited) Release(context.Context, int) error { return nil }

// AcquireGrant grants want.
func (u Unlimited) AcquireGrant(ctx context.Context, want int) (Grant, error) {
	n, err := u.Acquire(ctx, want)
	return Grant{N: n, At: time.Now()}, err
}

// ReleaseGrant does nothing.
func (Unlimited) ReleaseGrant(context.Context, Grant, int) error { return nil }

// Fresh is always true: there is no window to exceed.
func (Unlimited) Fresh(Grant) bool { return true }
