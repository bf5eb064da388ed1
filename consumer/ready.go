package consumer

import (
	"context"
	"time"
)

// SendSlots, when set in Deps, bounds the posts in flight over several consumers (a
// process serving many tenants, SPEC §9): a post waits for a slot, and gives it back
// when ServiceNow answered. *fairshare.Share implements it, handing the slots to the
// tenants that wait in turn.
type SendSlots interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// readyToSend waits until the delivery may be posted, and returns what frees its
// send slot (call it when ServiceNow answered):
//   - the pause ServiceNow imposed with a 429 is over (waited here, not inside the
//     client, so that a grant is judged when its request goes out, and no shared
//     slot is held through the pause);
//   - a slot of the shared posts is held (Deps.Slots);
//   - its grant is fresh: a message that waited (in the reserve, for its turn, for a
//     slot) longer than the budget allows between a grant and its request gives the
//     stale send back and takes a new one, waiting for it if the window is full, its
//     slot given back meanwhile.
//
// The caller keeps the message in progress while it waits. On an error (ctx ended) it holds
// no slot, and its grant (a renewed one too) is the caller's to give back.
func (c *Consumer) readyToSend(ctx context.Context, d *delivery) (release func(), err error) {
	for {
		if c.d.RateLimit != nil {
			if paused := time.Until(c.d.RateLimit.PausedUntil()); paused > 0 && !sleep(ctx, paused) {
				return nil, ctx.Err()
			}
		}
		if release, err = c.sendSlot(ctx); err != nil {
			return nil, err
		}
		if d.grant == nil || c.d.Budget.Fresh(*d.grant) {
			return release, nil
		}
		release()
		c.releaseGrant(context.Background(), *d.grant, 1)
		g, err := c.d.Budget.AcquireGrant(ctx, 1)
		*d.grant = g
		if err != nil {
			return nil, err
		}
	}
}

// sendSlot waits for a slot of the shared posts (Deps.Slots), when there are any.
func (c *Consumer) sendSlot(ctx context.Context) (release func(), err error) {
	if c.d.Slots == nil {
		return func() {}, nil
	}
	return c.d.Slots.Acquire(ctx)
}
