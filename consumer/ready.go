package consumer

import (
	"context"
	"time"

	"github.com/ionix/ionixsnow/budget"
)

// SendSlots, when set in Deps, bounds the posts in flight over several consumers (a
// process serving many tenants, SPEC §9): a post waits for a slot, and gives it back
// when ServiceNow answered. *fairshare.Share implements it, handing the slots to the
// tenants that wait in turn.
type SendSlots interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// renewNow bounds a renewal made while holding a send slot: one the window has room
// for is granted at once (a round trip or two); one that would wait for the window
// gives the slot back first.
const renewNow = 50 * time.Millisecond

// giveBackTimeout bounds the give-back of a stale grant when no shared send slot is
// held (a budget write's own bound).
const giveBackTimeout = 5 * time.Second

// readyToSend waits until the delivery may be posted, and returns what frees its
// send slot (call it when ServiceNow answered):
//   - the pause ServiceNow imposed with a 429 is over (waited here, not inside the
//     client, so that a grant is judged when its request goes out, and no shared
//     slot is held through the pause — one that began during the wait for the slot
//     too);
//   - a slot of the shared posts is held (Deps.Slots);
//   - its grant is fresh: a message that waited (in the reserve, for its turn, for a
//     slot) longer than the budget allows between a grant and its request gives the
//     stale send back and takes a new one — in the slot when the window has room at
//     once, so that the send goes then; otherwise it gives the slot back, waits for
//     the window and queues again.
//
// The caller keeps the message in progress while it waits. On an error (ctx ended)
// it holds no slot, and its grant (a renewed one too) is the caller's to give back.
func (c *Consumer) readyToSend(ctx context.Context, d *delivery) (release func(), err error) {
	for {
		if err := c.waitOutRateLimit(ctx); err != nil {
			return nil, err
		}
		if release, err = c.sendSlot(ctx); err != nil {
			return nil, err
		}
		if c.rateLimited() {
			release() // a 429 came while it waited for the slot: wait it out without one
			continue
		}
		if d.grant == nil || c.d.Budget.Fresh(*d.grant) {
			return release, nil
		}
		// In a shared slot, both bounded: a busy budget key holds up no other
		// tenant's posts. A give-back cut short leaves the send counted
		// (conservative), its slot lost for a window; so without shared slots,
		// where it holds up nothing, the give-back is not cut short (a budget
		// write on a loaded machine can take longer than renewNow).
		giveBackFor := renewNow
		if c.d.Slots == nil {
			giveBackFor = giveBackTimeout
		}
		gaveBack, cancel := context.WithTimeout(context.Background(), giveBackFor)
		c.releaseGrant(gaveBack, *d.grant, 1)
		cancel()
		now, cancel := context.WithTimeout(ctx, renewNow)
		g, err := c.acquireSend(now, d.urgent())
		cancel()
		*d.grant = g
		if err == nil && g.N > 0 {
			if c.d.Budget.Fresh(g) && !c.rateLimited() {
				return release, nil
			}
			release() // its write outlasted the freshness, or a 429 came meanwhile
			continue  // judged again
		}
		release()
		g, err = c.acquireSend(ctx, d.urgent())
		*d.grant = g
		if err != nil {
			return nil, err
		}
	}
}

// waitToSend is readyToSend after the delivery's turn in the send order, both ending
// with Run's context too (SIGTERM, a tenant deactivated): a post not started by then
// is not made. Without anything to wait for — no turn, no shared slots, no 429
// pause, a fresh grant — it returns at once, making no context.
func (c *Consumer) waitToSend(ctx context.Context, d *delivery) (release func(), err error) {
	if d.sendTurn == nil && c.d.Slots == nil && !c.rateLimited() && (d.grant == nil || c.d.Budget.Fresh(*d.grant)) {
		return func() {}, nil
	}
	wctx, waited := d.waitCtx(ctx)
	defer waited()
	d.sendTurn.wait(wctx.Done())
	return c.readyToSend(wctx, d)
}

// rateLimited reports whether ServiceNow's 429 pause is on.
func (c *Consumer) rateLimited() bool {
	return c.d.RateLimit != nil && time.Until(c.d.RateLimit.PausedUntil()) > 0
}

// waitOutRateLimit sleeps until ServiceNow's 429 pause is over.
func (c *Consumer) waitOutRateLimit(ctx context.Context) error {
	if c.d.RateLimit == nil {
		return nil
	}
	if paused := time.Until(c.d.RateLimit.PausedUntil()); paused > 0 && !sleep(ctx, paused) {
		return ctx.Err()
	}
	return nil
}

// sendSlot waits for a slot of the shared posts (Deps.Slots), when there are any.
func (c *Consumer) sendSlot(ctx context.Context) (release func(), err error) {
	if c.d.Slots == nil {
		return func() {}, nil
	}
	return c.d.Slots.Acquire(ctx)
}

// acquireSend takes one send: urgent (a High item the express lane sends ahead: the
// slots reserved for them, not paced) when the budget has such sends.
func (c *Consumer) acquireSend(ctx context.Context, urgent bool) (budget.Grant, error) {
	if u, ok := c.d.Budget.(urgentGranter); ok && urgent {
		return u.AcquireUrgentGrant(ctx, 1)
	}
	return c.d.Budget.AcquireGrant(ctx, 1)
}

// urgent reports whether the delivery's send is urgent: a High item the express lane
// sends ahead.
func (d *delivery) urgent() bool { return d.express != nil && d.express.urgent }
