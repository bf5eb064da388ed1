package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/ionix"
)

// The pull path. Concurrency workers post; the pull loop keeps them fed from a reserve
// of messages pulled ahead, so that no round trip lies between one post finishing and
// the next message being in hand:
//
//   - room holds a token per message in hand (queued in the reserve or being
//     handled): at most Concurrency + reserve of them;
//   - the loop waits until at least lowWater tokens are free (or the reserve ran dry),
//     asks the budget for that many sends, pulls at most what was granted and queues
//     the messages in fetch order; never more is held than was granted, so the cap
//     holds and a replica never sits on messages it could not send;
//   - a worker hands a message to handle and, when no import request was made, gives
//     its send back to the budget; the token is freed when it is done.
//
// While sending is paused the loop pulls one message at a time, as the probe, and only
// when no other message is in hand.

// pulled is one message in hand: fetched, decoded, its turn reserved, its send granted.
type pulled struct {
	d     delivery
	grant budget.Grant // d.grant points here once a worker takes it
	// unqueue stops marking it in progress while it waits in the reserve (a long
	// wait must not let AckWait hand it to another replica).
	unqueue func()
}

// lowWater is how many free places the pull loop waits for before it pulls again:
// fewer, larger pulls (one budget grant and one pull request for at least half the
// reserve) while the rest of the reserve keeps the workers busy.
func (c *Consumer) lowWater() int { return max(1, c.o.PullAhead/2) }

// Run fetches and handles messages until ctx ends, then stops fetching, lets the
// posts in flight finish (up to DrainTimeout) and returns nil. Messages pulled ahead
// but not started are negatively acknowledged so another replica can take them at once.
func (c *Consumer) Run(ctx context.Context) error {
	stopWatch, err := c.watchMaxDeliveries(ctx)
	if err != nil {
		return err
	}
	defer stopWatch()
	stopStreamWatch := c.watchStream(ctx)
	defer stopStreamWatch()
	room := make(chan struct{}, c.o.Concurrency+c.o.PullAhead)
	queue := make(chan pulled, cap(room))
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	for range c.o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx, work, queue, room)
		}()
	}
	if c.x != nil {
		wg.Go(func() { c.x.run(ctx, work) })
		wg.Go(func() { c.x.watchClaims(ctx) })
	}
	// Pull failures (NATS restarting, a consumer leader moving) are retried with a
	// capped exponential backoff, reset by the next pull that works.
	retry := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(250*time.Millisecond),
		backoff.WithMaxInterval(min(c.o.MaxBackoff, 30*time.Second)),
		backoff.WithMaxElapsedTime(0))
	for ctx.Err() == nil {
		c.waitIdle(ctx)
		err := c.pullOnce(ctx, room, queue, c.lowWater())
		if err == nil {
			retry.Reset()
			continue
		}
		if ctx.Err() != nil {
			break
		}
		// A ring answered by a pull that failed is answered by the next one.
		c.lastPullEmpty = false
		// The stream may have been deleted (and its durable consumer with it): read
		// its instance again before the next pull.
		c.streamStale.Store(true)
		wait := retry.NextBackOff()
		c.d.Log.Warn().Err(err).Dur("retry_in", wait).Msg("pull failed; retrying")
		sleep(ctx, wait)
	}
	c.stopping.Store(true)
	close(queue)
	// What no worker has started goes back to the stream now, not when a worker
	// is free (that could take the whole drain timeout).
	c.work(ctx, work, queue, room)
	if c.o.GaveBack != nil {
		c.o.GaveBack()
	}
	c.drain(&wg, cancelWork)
	// The plain acks of the last posts may still sit in the client's buffer.
	if err := c.conn().FlushTimeout(confirmTimeout); err != nil {
		c.d.Log.Warn().Err(err).Msg("could not flush the last acks; their messages are redelivered after AckWait and recognised by the ledger")
	}
	return nil
}

// work handles the queued messages until the queue is closed. Messages taken after
// ctx ended are returned to the stream unstarted.
func (c *Consumer) work(ctx, work context.Context, queue <-chan pulled, room chan struct{}) {
	for p := range queue {
		c.handlePulled(ctx, work, p)
		giveSlots(room, 1)
	}
}

// handlePulled hands one message to handle, or returns it to the stream unstarted
// when the consumer is stopping or NATS is down; a send not made gives its grant back.
func (c *Consumer) handlePulled(ctx, work context.Context, p pulled) {
	p.unqueue()
	defer p.d.turn.done()
	defer p.d.sendTurn.start() // a message that posts nothing lets the next go
	if ctx.Err() != nil {
		c.stopping.Store(true) // the nak is confirmed (see nak)
		c.returnUnstarted(p, true)
		return
	}
	if !c.connected(ctx) {
		// Its post could be neither recorded nor acknowledged: not made. The nak
		// waits in the client's reconnect buffer; if it is lost, the message comes
		// back after AckWait. The grant is not given back (that needs NATS too): it
		// lapses with its slice.
		c.returnUnstarted(p, false)
		return
	}
	p.d.grant, p.d.stop = &p.grant, ctx
	if !c.handle(work, p.d) {
		// Not with work: cancelled at shutdown, it would keep the grant held until
		// the window passes.
		c.releaseGrant(context.Background(), p.grant, 1)
	}
}

// returnUnstarted returns a message no post was started for, giving its grant back
// when release is set.
func (c *Consumer) returnUnstarted(p pulled, release bool) {
	if err := c.nak(p.d.msg, 0); err != nil {
		c.d.Log.Warn().Err(err).Msg("nak failed; the message is redelivered after AckWait")
	}
	if release {
		c.releaseGrant(context.Background(), p.grant, 1)
	}
}

// reconnectWait bounds how long a worker waits for NATS to come back before it
// returns the message in hand unstarted.
const reconnectWait = 2 * time.Second

// connected reports whether NATS is connected, waiting up to reconnectWait for a
// reconnection.
func (c *Consumer) connected(ctx context.Context) bool {
	conn := c.conn()
	if conn.Status() == nats.CONNECTED {
		return true
	}
	ch := conn.StatusChanged(nats.CONNECTED)
	defer conn.RemoveStatusListener(ch)
	if conn.Status() == nats.CONNECTED { // reconnected before the listener was in place
		return true
	}
	t := time.NewTimer(reconnectWait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// pullOnce waits for room, asks the budget for as many sends, pulls at most that many
// messages and queues each for the workers. Room and grants left unused when the pull
// ends are given back.
func (c *Consumer) pullOnce(ctx context.Context, room chan struct{}, queue chan<- pulled, lowWater int) error {
	var free int
	var err error
	probe := c.brk.isOpen()
	if probe {
		free, err = c.probeSlot(ctx, room)
	} else {
		free, err = takeRoom(ctx, room, lowWater, func() bool { return len(queue) == 0 })
		if err == nil && c.brk.isOpen() {
			// The failure that freed the room paused sending meanwhile.
			giveSlots(room, free)
			return nil
		}
	}
	if err != nil {
		return err
	}
	if want := c.pullSize(free); want < free {
		giveSlots(room, free-want)
		free = want
	}
	c.x.yield(ctx)
	grant, err := c.d.Budget.AcquireGrant(ctx, free)
	granted := grant.N
	if err != nil {
		giveSlots(room, free)
		return fmt.Errorf("budget: %w", err)
	}
	if c.x.waiting() {
		// A Medium item came while the loop waited for its grant: the send is the
		// express lane's.
		c.giveBack(room, grant, granted)
		giveSlots(room, free-granted)
		return nil
	}
	giveSlots(room, free-granted)
	if err := c.checkStream(ctx); err != nil {
		c.giveBack(room, grant, granted)
		return err
	}
	stream := c.streamID() // the instance this pull's messages come from
	// FetchMaxWait, not a context with a deadline: with a context nats.go has the
	// server expire the pull at 90 % of it and stops reading at the deadline, so a
	// message the server sends in the last tenth is lost to the client and waits out
	// AckWait. The pull ends by itself within FetchWait; messages that arrive after
	// ctx ended are returned unstarted by the workers.
	// A ring before this pull is answered by it: the next idle wait waits for a new one.
	if c.o.Doorbell != nil {
		select {
		case <-c.o.Doorbell:
		default:
		}
	}
	got := 0          // messages that took a grant: queued, or returned with it
	var unknown error // the stream instance went unreadable in this pull
	var fetchErr error
	// While the express lane is on, requests start in fetch order; the chain is
	// dropped when it goes off (once, not per message).
	ordered := c.x.engaged()
	if !ordered {
		c.sends.reset()
	}
	pullStart := c.now()
	for first := true; ; first = false {
		batch, err := c.d.Consumer.Fetch(granted-got, jetstream.FetchMaxWait(c.o.FetchWait))
		if err != nil {
			c.giveBack(room, grant, granted-got)
			return fmt.Errorf("fetch: %w", err)
		}
		if first {
			defer func() { c.pullEndedAt = c.now() }()
		}
		skipped := 0
		for msg := range batch.Messages() {
			var meta *jetstream.MsgMetadata
			if unknown == nil {
				meta, stream, unknown = c.noteDelivery(ctx, msg, stream)
			}
			if unknown == nil && meta != nil && c.skipOutsidePass(msg, meta) {
				skipped++
				continue
			}
			got++
			if unknown != nil {
				// Not queued: its event cannot be dated against the ledger.
				if err := c.nak(msg, 0); err != nil {
					c.d.Log.Warn().Err(err).Msg("nak failed; the message is redelivered after AckWait")
				}
				c.giveBack(room, grant, 1)
				continue
			}
			// Decoded here, in fetch order, so that posts of one item take their turns
			// in stream order; an invalid item needs no turn (it is dead-lettered).
			item, decodeErr := ionix.Decode(msg.Data())
			var t *turn
			if decodeErr == nil {
				t = c.locks.reserve(item.ID)
			}
			d := delivery{msg: msg, meta: meta, item: item, decodeErr: decodeErr, turn: t, probe: probe, stream: stream}
			if now := c.x.engaged(); now != ordered {
				if ordered = now; !ordered {
					c.sends.reset()
				}
			}
			if ordered {
				d.sendTurn = c.sends.next()
			}
			queue <- pulled{d: d, grant: grant, unqueue: c.keepAlive(msg)}
		}
		if fetchErr = batch.Error(); fetchErr != nil && !isFetchEnd(fetchErr) {
			break
		}
		// A replay's pass skipped messages: their grants are for the next ones, for
		// as long as one pull lasts, while nothing else changed.
		if skipped == 0 || got == granted || unknown != nil || ctx.Err() != nil ||
			c.brk.isOpen() != probe || c.now().Sub(pullStart) >= c.o.FetchWait {
			break
		}
	}
	c.giveBack(room, grant, granted-got)
	c.lastPullShort = got < granted
	c.lastPullEmpty = got == 0
	if fetchErr != nil && !isFetchEnd(fetchErr) {
		return fmt.Errorf("fetch: %w", fetchErr)
	}
	return unknown
}

// skipOutsidePass acknowledges a message a replay's pass does not re-send — another
// band's, or one after the range — in the pull loop: it takes no grant and no worker,
// so a pass moves through the other bands' messages at the broker's pace, not the
// cap's. (decide would ack it unsent as well.) A lost ack is redelivered and skipped
// again.
func (c *Consumer) skipOutsidePass(msg jetstream.Msg, meta *jetstream.MsgMetadata) bool {
	if c.o.Replay == nil || !modeOf(c.o).outsidePass(meta.Sequence.Stream) {
		return false
	}
	if err := msg.Ack(); err != nil {
		c.d.Log.Debug().Err(err).Uint64("stream_seq", meta.Sequence.Stream).Msg("ack of a message outside the replay's pass failed; skipped again at its redelivery")
	}
	return true
}

// pullSize is how many messages the next pull asks for, with free places: all of
// them while the stream keeps up; one after a pull that brought fewer than it asked
// for (the stream had no more), so that an idle replica holds one grant while its
// pull waits, not a reserve's worth. A new backlog costs one small pull.
func (c *Consumer) pullSize(free int) int {
	if c.lastPullShort {
		return 1
	}
	return free
}

// takeRoom blocks for one free place, then takes every other free one; it keeps
// waiting for more until it holds lowWater or dry reports that the workers have
// nothing left queued (then a smaller pull now beats a larger one later).
func takeRoom(ctx context.Context, room chan struct{}, lowWater int, dry func() bool) (int, error) {
	n := 0
	for {
		select {
		case room <- struct{}{}:
			n++
		case <-ctx.Done():
			giveSlots(room, n)
			return 0, ctx.Err()
		}
	more:
		for n < cap(room) {
			select {
			case room <- struct{}{}:
				n++
			default:
				break more
			}
		}
		if n >= min(lowWater, cap(room)) || dry() {
			return n, nil
		}
	}
}

// probeSlot waits, while sending is paused, until a probe is due and nothing else is
// in hand, and then takes one place: the probe is a single message.
func (c *Consumer) probeSlot(ctx context.Context, room chan struct{}) (int, error) {
	for {
		if _, err := c.brk.admit(ctx, 1); err != nil {
			return 0, err
		}
		for range cap(room) {
			select {
			case room <- struct{}{}:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		// A probe that was in flight may have failed meanwhile and moved the next
		// probe further out.
		if st := c.brk.state(); !st.Halted && (!st.Paused || !c.now().Before(st.NextProbeAt)) {
			giveSlots(room, cap(room)-1)
			return 1, nil
		}
		giveSlots(room, cap(room))
	}
}

// conn is the NATS connection the consumer's messages come over.
func (c *Consumer) conn() *nats.Conn { return c.d.JetStream.Conn() }

func (c *Consumer) giveBack(room chan struct{}, g budget.Grant, n int) {
	if n <= 0 {
		return
	}
	giveSlots(room, n)
	c.releaseGrant(context.Background(), g, n)
}

// releaseGrant returns n unspent sends of grant g to the budget.
func (c *Consumer) releaseGrant(ctx context.Context, g budget.Grant, n int) {
	if err := c.d.Budget.ReleaseGrant(ctx, g, n); err != nil {
		c.d.Log.Warn().Err(err).Int("grants", n).Msg("could not return unused budget")
	}
}
