package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/backlog"
	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/ionix"
)

// The express lane (SPEC §10, Options.Express): while the cap holds a backlog back,
// High and then Medium items are sent ahead of the stream order.
//
//   - It engages when the pull loop waited for the budget (engageAfter): the cap, not
//     ServiceNow, sets the pace, so the stream order would keep a new High item
//     waiting behind the backlog. Without a backlog nothing of this runs.
//   - Engaged, it follows the pipeline's subjects from the durable consumer's ack
//     floor (backlog.Follow, an ordered consumer that holds nothing) into an index by
//     band, and sends, one at a time, the oldest High item, else the oldest Medium
//     one, that the durable consumer has not delivered yet: it reads the message by
//     sequence and hands it to the same decision and post as any delivery, marked
//     express: it only ever posts (anything else is left to the message's own
//     delivery) and has nothing to acknowledge.
//   - A High item takes an urgent grant: the slots the budget reserves for them, not
//     paced (budget.KV.AcquireUrgentGrant); a Medium one an ordinary grant, and the
//     pull loop yields to it (yield), so Medium goes before Low.
//   - While engaged, every delivery reads the ledger first (mode.overtaking): the
//     message the lane sent is acknowledged when the durable consumer delivers it
//     (the same event, or a newer one, is ticketed), and an older version of an item
//     whose newer one went ahead is superseded, never posted after it. Turns keep the
//     posts of one item in this process one at a time.
//   - It disengages once the durable consumer's ack floor passed everything it
//     indexed and sent ahead, and the backlog stayed empty for disengageAfter.
type express struct {
	c   *Consumer
	ix  atomic.Pointer[backlog.Index] // while engaged
	on  atomic.Bool
	go_ chan struct{} // capacity 1: engage
	// ahead is the highest sequence sent ahead: the ledger is read for every
	// delivery until the ack floor passed it.
	ahead atomic.Uint64
	// delivered is the highest sequence the durable consumer is known to have
	// delivered (this replica's fetches, the consumer's info).
	delivered atomic.Uint64
}

const (
	// engageAfter: a budget grant the pull loop waited this long for means the cap
	// holds a backlog back.
	engageAfter = 50 * time.Millisecond
	// expressRecheck is how often the engaged lane reads the durable consumer's
	// floors, and the pull loop looks whether a Medium item still waits.
	expressRecheck = time.Second
	yieldRecheck   = 100 * time.Millisecond
	// disengageAfter is how long the backlog stays empty before the lane stops.
	disengageAfter = 10 * time.Second
)

func newExpress(c *Consumer) *express {
	return &express{c: c, go_: make(chan struct{}, 1)}
}

// engaged reports whether deliveries must read the ledger: the lane is on.
func (x *express) engaged() bool { return x != nil && x.on.Load() }

// engage starts the lane, once, when the budget made the pull loop wait.
func (x *express) engage() {
	if x == nil || !x.on.CompareAndSwap(false, true) {
		return
	}
	select {
	case x.go_ <- struct{}{}:
	default:
	}
}

// engageIfWaiting engages the lane if the grant the pull loop is about to wait for
// takes longer than engageAfter; stop the timer it returns once the grant came.
func (x *express) engageIfWaiting() interface{ Stop() bool } {
	if x == nil || x.on.Load() {
		return noTimer{}
	}
	return time.AfterFunc(engageAfter, x.engage)
}

// noTimer is a timer that never fires.
type noTimer struct{}

func (noTimer) Stop() bool { return false }

// noteFetched records that the durable consumer delivered seq to this replica.
func (x *express) noteFetched(seq uint64) {
	if x == nil {
		return
	}
	for d := x.delivered.Load(); seq > d && !x.delivered.CompareAndSwap(d, seq); d = x.delivered.Load() {
	}
}

// run serves the lane each time it is engaged, until ctx (Run's) ends; its posts run
// on work, which lasts through the drain.
func (x *express) run(ctx, work context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-x.go_:
		}
		x.serve(ctx, work)
		x.ix.Store(nil)
		x.on.Store(false)
	}
}

// serve follows the backlog and sends ahead until it is gone or ctx ends.
func (x *express) serve(ctx, work context.Context) {
	c := x.c
	log := c.d.Log.With().Str("lane", "express").Logger()
	info, err := c.d.Consumer.Info(ctx)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the durable consumer; High items keep the stream order")
		return
	}
	subjects := info.Config.FilterSubjects
	if len(subjects) == 0 && info.Config.FilterSubject != "" {
		subjects = []string{info.Config.FilterSubject}
	}
	ix := backlog.NewIndex()
	x.ix.Store(ix)
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	go func() {
		if err := backlog.Follow(fctx, c.d.JetStream, info.Stream, subjects, info.AckFloor.Stream+1, ix); err != nil {
			log.Warn().Err(err).Msg("stopped following the backlog")
			stopFollowing()
		}
	}()
	log.Info().Uint64("from_seq", info.AckFloor.Stream+1).Msg("the cap holds a backlog back: High and Medium items go ahead of it")
	x.floors(info, ix)
	tick := time.NewTicker(expressRecheck)
	defer tick.Stop()
	emptySince := time.Now()
	for fctx.Err() == nil {
		if seq, band, ok := ix.First(backlog.Medium); ok {
			if seq > x.delivered.Load() {
				x.send(fctx, work, seq, band)
			}
			ix.Done(seq)
			continue
		}
		select {
		case <-fctx.Done():
		case <-ix.Changed():
		case <-tick.C:
			info, err := c.d.Consumer.Info(fctx)
			if err != nil {
				continue
			}
			x.floors(info, ix)
			if ix.Counts() != [3]int{} || info.AckFloor.Stream < x.ahead.Load() || info.NumPending > 0 {
				emptySince = time.Now()
			} else if time.Since(emptySince) > disengageAfter {
				log.Info().Msg("backlog gone: the stream order again")
				return
			}
		}
	}
}

// floors takes the durable consumer's delivered sequence and ack floor.
func (x *express) floors(info *jetstream.ConsumerInfo, ix *backlog.Index) {
	x.noteFetched(info.Delivered.Stream)
	ix.Settled(info.AckFloor.Stream)
}

// send posts the message at seq ahead of the stream order: with an urgent grant for
// a High item, an ordinary one for a Medium item.
func (x *express) send(ctx, work context.Context, seq uint64, band backlog.Band) {
	c := x.c
	var g budget.Grant
	var err error
	if u, ok := c.d.Budget.(urgentGranter); ok && band == backlog.High {
		g, err = u.AcquireUrgentGrant(ctx, 1)
	} else {
		g, err = c.d.Budget.AcquireGrant(ctx, 1)
	}
	if err != nil {
		return
	}
	posted := false
	defer func() {
		if !posted {
			c.releaseGrant(context.Background(), g, 1)
		}
	}()
	raw, err := c.d.Stream.GetMsg(ctx, seq)
	if err != nil || seq <= x.delivered.Load() {
		return // gone, or the durable consumer delivered it meanwhile
	}
	item, err := ionix.Decode(raw.Data)
	if err != nil {
		return
	}
	for a := x.ahead.Load(); seq > a && !x.ahead.CompareAndSwap(a, seq); a = x.ahead.Load() {
	}
	msg := &aheadMsg{raw: raw}
	t := c.locks.reserve(item.ID)
	defer t.done()
	d := delivery{msg: msg, meta: msg.meta(), item: item, turn: t, stream: c.streamID(), express: true, grant: &g, stop: ctx}
	posted = c.handle(work, d)
}

// urgentGranter is a budget with slots reserved for High items (budget.KV).
type urgentGranter interface {
	AcquireUrgentGrant(ctx context.Context, want int) (budget.Grant, error)
}

// yield holds the pull loop back while a Medium (or High) item the durable consumer
// has not delivered waits for the lane: the next ordinary grant is the lane's.
func (x *express) yield(ctx context.Context) {
	if !x.waiting() {
		return
	}
	t := time.NewTicker(yieldRecheck)
	defer t.Stop()
	for x.waiting() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// waiting reports whether the lane has a Medium (or High) item to send that the
// durable consumer has not delivered.
func (x *express) waiting() bool {
	if !x.engaged() {
		return false
	}
	ix := x.ix.Load()
	if ix == nil {
		return false
	}
	seq, _, ok := ix.First(backlog.Medium)
	return ok && seq > x.delivered.Load()
}

// aheadMsg is a message read from the stream by sequence for the express lane: it
// has no delivery to acknowledge, so every reply to the server is a no-op.
type aheadMsg struct{ raw *jetstream.RawStreamMsg }

func (m *aheadMsg) meta() *jetstream.MsgMetadata {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.raw.Sequence}, NumDelivered: 1, Stream: "", Timestamp: m.raw.Time}
}
func (m *aheadMsg) Metadata() (*jetstream.MsgMetadata, error) { return m.meta(), nil }
func (m *aheadMsg) Data() []byte                              { return m.raw.Data }
func (m *aheadMsg) Headers() nats.Header                      { return m.raw.Header }
func (m *aheadMsg) Subject() string                           { return m.raw.Subject }
func (m *aheadMsg) Reply() string                             { return "" }
func (m *aheadMsg) Ack() error                                { return nil }
func (m *aheadMsg) DoubleAck(context.Context) error           { return nil }
func (m *aheadMsg) Nak() error                                { return nil }
func (m *aheadMsg) NakWithDelay(time.Duration) error          { return nil }
func (m *aheadMsg) InProgress() error                         { return nil }
func (m *aheadMsg) Term() error                               { return errNotDelivered }
func (m *aheadMsg) TermWithReason(string) error               { return errNotDelivered }

// errNotDelivered: a message the express lane read has no delivery to terminate.
var errNotDelivered = errors.New("read ahead of its delivery: nothing to terminate")

// BacklogByUrgency is the messages not acknowledged yet by band (High, Medium, Low:
// backlog.Band), known only while the express lane follows the backlog; sorted is
// false otherwise.
func (c *Consumer) BacklogByUrgency() (counts [3]int, sorted bool) {
	if !c.x.engaged() {
		return counts, false
	}
	ix := c.x.ix.Load()
	if ix == nil {
		return counts, false
	}
	return ix.Counts(), true
}
