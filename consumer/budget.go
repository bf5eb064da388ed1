package consumer

import "context"

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

// Unlimited is a Budget that grants everything at once (the cap switched off).
type Unlimited struct{}

// Acquire grants want.
func (Unlimited) Acquire(ctx context.Context, want int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return want, nil
}

// Release does nothing.
func (Unlimited) Release(context.Context, int) error { return nil }
