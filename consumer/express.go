package consumer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/backlog"
	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// The express lane (SPEC §10, Options.Express): while the cap holds a backlog back,
// High and then Medium items are sent ahead of the stream order.
//
//   - It engages when the budget holds a grant back (budget.KV.OnHold): the cap, not
//     ServiceNow, sets the pace, so the stream order would keep a new High item
//     waiting behind the backlog. Without a backlog nothing of this runs.
//   - Engaged, it follows the pipeline's subjects from the durable consumer's ack
//     floor (backlog.Follow, an ordered consumer that holds nothing) into an index by
//     band — only what would be posted: opened events the filter lets through, and
//     closings with resolve_on_close — and sends the oldest High item, else the
//     oldest Medium one, that the durable consumer has not delivered, up to
//     Options.Concurrency at once: it takes a claim on the message (Deps.Claims: each
//     message goes ahead from one replica only), reads it by sequence and hands it to
//     the same decision and post as any delivery, marked express: it only ever
//     posts, and anything else — a copy, an item whose ledger says closed (a
//     reopening keeps its place), a failure — is left to the message's own
//     delivery; a send not made puts the item back, tried again after a pause.
//   - A High item takes an urgent grant: the slots the budget reserves for them, not
//     paced (budget.KV.AcquireUrgentGrant); a Medium one an ordinary grant, and the
//     pull loop yields to it (yield), so Medium goes before Low. The order is
//     global: a lane that finds another replica's lane holding the claim waits, as
//     for a send of its own, until that claim is gone (awaitLane), so that no
//     replica's pull loop takes the slot the other lane's send waits for.
//   - While engaged, and until the ack floor passed everything sent ahead, every
//     delivery reads the ledger first (mode.overtaking): the message the lane sent is
//     acknowledged when the durable consumer delivers it, and an older version of an
//     item whose newer one went ahead is superseded, never posted after it. Turns
//     keep the posts of one item in this process one at a time. A replica whose
//     own lane is off still looks at the claim of each message a lane would send
//     and reads the ledger for it (claimOwnTurn): another replica's lane may be
//     sending it, and the watch of the claims tells that only later.
//   - It disengages once the budget held nothing back for disengageAfter and the ack
//     floor passed what it sent.
type express struct {
	c   *Consumer
	ix  atomic.Pointer[backlog.Index] // while engaged
	on  atomic.Bool
	go_ chan struct{} // capacity 1: engage
	// ahead is the highest sequence sent ahead, floor the durable consumer's ack
	// floor last read: deliveries read the ledger while ahead > floor.
	ahead, floor atomic.Uint64
	// delivered is the highest sequence the durable consumer is known to have
	// delivered (this replica's fetches, the consumer's info).
	delivered atomic.Uint64
	waitedAt  atomic.Int64 // Unix ns the budget last said it holds a grant back
	// inOrder makes the sends of a band start in stream order: serve gives each a
	// turn in the band's chain as it takes it, and a send waits for the one before
	// to hold its grant (the posts then run side by side).
	inOrder [2]sendOrder
	// ungranted counts the sends taken that have no grant yet: the pull loop
	// yields to them too; highUngranted those of High items, before which no
	// Medium send starts.
	ungranted, highUngranted atomic.Int64
	// othersAt is when a claim of any replica's lane (a watch on the claims) was
	// last seen: this replica's deliveries claim and read the ledger too, even
	// while its own lane is off.
	othersAt atomic.Int64
	// stopServing ends the lane's serve (streamChanged); gen counts the changes of
	// the stream instance.
	stopServing atomic.Pointer[context.CancelFunc]
	gen         atomic.Uint64
}

const (
	// expressRecheck is how often the engaged lane reads the durable consumer's
	// floors; yieldRecheck how often the pull loop looks whether a Medium item still
	// waits for the lane; retryAhead how long an item whose send was not made waits.
	expressRecheck = time.Second
	yieldRecheck   = 100 * time.Millisecond
	retryAhead     = time.Second
	// maxYield bounds how long the pull loop waits for the lane at a time.
	maxYield = 30 * time.Second
	// disengageAfter is how long the budget holds nothing back before the lane stops.
	disengageAfter = 10 * time.Second
)

func newExpress(c *Consumer) *express {
	return &express{c: c, go_: make(chan struct{}, 1)}
}

// engaged reports whether deliveries must read the ledger: the lane is on, or what
// it sent ahead is not all acknowledged yet.
func (x *express) engaged() bool {
	return x != nil && (x.on.Load() || x.ahead.Load() > x.floor.Load() ||
		time.Since(time.Unix(0, x.othersAt.Load())) < disengageAfter)
}

// watchClaims notes every claim any replica's lane takes, until ctx ends: a lane
// elsewhere makes this replica's deliveries careful too (claims, ledger reads).
func (x *express) watchClaims(ctx context.Context) {
	if x == nil || x.c.d.Claims == nil {
		return
	}
	claims := x.c.d.Claims
	w, err := claims.KV.Watch(ctx, claims.Prefix+">", jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
	if err != nil {
		x.c.d.Log.Warn().Err(err).Msg("cannot watch the express lanes' claims; while its own lane is off, this replica may post an older version of an item after the newer one another sent ahead (it requeues the newer one then)")
		return
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil && strings.HasPrefix(string(e.Value()), laneClaim) {
				x.othersAt.Store(time.Now().UnixNano())
			}
		}
	}
}

// holdNotifier is a budget that says when the cap holds its callers back
// (budget.KV.OnHold).
type holdNotifier interface{ OnHold(func()) }

// held notes that the cap holds a grant back (the budget calls it while it does),
// and engages the lane.
func (x *express) held() {
	x.waitedAt.Store(time.Now().UnixNano())
	if !x.on.CompareAndSwap(false, true) {
		return
	}
	select {
	case x.go_ <- struct{}{}:
	default:
	}
}

// streamChanged forgets the sequences of a stream that was created again: the new
// instance counts from 1, and the lane, if on, stops following the old one (the next
// hold engages it on the new one); its sends not made yet are dropped (send).
func (x *express) streamChanged() {
	if x == nil {
		return
	}
	x.gen.Add(1)
	if stop := x.stopServing.Load(); stop != nil {
		(*stop)()
	}
	x.ix.Store(nil)
	x.delivered.Store(0)
	x.ahead.Store(0)
	x.floor.Store(0)
}

// instanceAt is a stream instance as the lane saw it: its id, and the count of
// streamChanged then.
type instanceAt struct {
	stream string
	gen    uint64
}

// instanceNow reads the instance with the count it belongs to: setStream stores a
// new instance before it counts the change, so an instance read between the two
// goes with the count of before, and what the lane takes with it is dropped for
// nothing at worst; a change counted while it was read is read again.
func (x *express) instanceNow() instanceAt {
	for {
		gen := x.gen.Load()
		stream := x.c.streamID()
		if x.gen.Load() == gen {
			return instanceAt{stream: stream, gen: gen}
		}
	}
}

// noteFetched records that the durable consumer delivered seq to this replica.
func (x *express) noteFetched(seq uint64) {
	if x == nil {
		return
	}
	storeMax(&x.delivered, seq)
}

// storeMax raises v to n if n is higher.
func storeMax(v *atomic.Uint64, n uint64) {
	for o := v.Load(); n > o && !v.CompareAndSwap(o, n); o = v.Load() {
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

// serve follows the backlog and sends ahead until the cap holds nothing back any
// more, or ctx ends.
func (x *express) serve(ctx, work context.Context) {
	c := x.c
	log := c.d.Log.With().Str("lane", "express").Logger()
	// The stream instance this serve is for: what it reads and sends is that
	// instance's (streamChanged ends it, and drops what it has not sent yet).
	at := x.instanceNow()
	fctx, stopFollowing := context.WithCancel(ctx)
	x.stopServing.Store(&stopFollowing)
	defer stopFollowing()
	info, err := c.d.Consumer.Info(fctx)
	if err != nil {
		if fctx.Err() == nil {
			log.Warn().Err(err).Msg("cannot read the durable consumer; High items keep the stream order")
		}
		return
	}
	if x.gen.Load() != at.gen {
		return // the stream was created again while its consumer was read
	}
	subjects := info.Config.FilterSubjects
	if len(subjects) == 0 && info.Config.FilterSubject != "" {
		subjects = []string{info.Config.FilterSubject}
	}
	ix := backlog.NewIndex()
	x.ix.Store(ix)
	followed := make(chan struct{})
	slots := make(chan struct{}, c.o.Concurrency)
	var sends sync.WaitGroup
	defer func() { stopFollowing(); sends.Wait(); <-followed }()
	go func() {
		defer close(followed)
		if err := backlog.Follow(fctx, c.d.JetStream, info.Stream, subjects, info.AckFloor.Stream+1, ix, x.keep); err != nil {
			log.Warn().Err(err).Msg("stopped following the backlog")
			stopFollowing()
		}
	}()
	if c.d.Claims != nil {
		defer c.d.Claims.purge()
	}
	log.Info().Uint64("from_seq", info.AckFloor.Stream+1).Msg("the cap holds a backlog back: High and Medium items go ahead of it")
	x.floors(info, ix)
	tick := time.NewTicker(expressRecheck)
	defer tick.Stop()
	for fctx.Err() == nil {
		if c.brk.isOpen() {
			// Sending is paused: the lane sends nothing (the pull loop probes), and
			// holds the pull loop back for nothing.
			select {
			case <-fctx.Done():
			case <-tick.C:
			}
			continue
		}
		if seq, band, ok := ix.First(backlog.Medium); ok {
			if seq <= x.delivered.Load() {
				ix.Done(seq) // the durable consumer has it
				continue
			}
			if band == backlog.Medium && x.highUngranted.Load() > 0 {
				sleep(fctx, yieldRecheck/10) // High first: a High send still waits for its grant
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-fctx.Done():
				continue
			}
			ix.Take(seq, band)
			x.ungranted.Add(1)
			if band == backlog.High {
				x.highUngranted.Add(1)
			}
			turn := x.inOrder[band].next()
			sends.Go(func() {
				free := sync.OnceFunc(func() { <-slots })
				defer free()
				// The waits end with the serve (a disengage, a stream created again);
				// a post under way goes on, on work.
				switch x.send(fctx, work, at, seq, band, turn) {
				case aheadSettled:
					ix.Done(seq)
				case aheadElsewhere:
					free() // not a send of this lane's
					x.awaitLane(fctx, seq, band)
					ix.Done(seq)
				default:
					// Not sent: back in its place after a pause (ServiceNow failing,
					// sending paused, the claim unreadable).
					if sleep(fctx, retryAhead) {
						ix.Return(seq)
					}
				}
			})
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
			held := time.Since(time.Unix(0, x.waitedAt.Load())) < disengageAfter
			if !held && info.AckFloor.Stream >= x.ahead.Load() {
				log.Info().Msg("the cap holds nothing back: the stream order again")
				return
			}
		}
	}
}

// keep is what the lane may send ahead: opened events the filter lets through, and
// closings with resolve_on_close.
func (x *express) keep(subject string, item ionix.ActionItem, closing bool) bool {
	switch {
	case otherTenants(x.c.itemPrefix, subject):
		return false // the single-tenant form's filter covers tenants' subjects
	case closing:
		return x.c.o.ResolveOnClose
	}
	pass, _ := x.c.o.Filter.Allows(item)
	return pass
}

// sendsAhead reports whether the lane would send a delivered message ahead: a
// first version of an item it keeps, High or Medium, not a copy.
func (x *express) sendsAhead(d *delivery) bool {
	if d.facts.copy != copyNone || d.decodeErr != nil || backlog.BandOf(d.item.Urgency) == backlog.Low {
		return false
	}
	return x.keep(d.msg.Subject(), d.item, d.facts.kind == evClosed)
}

// floors takes the durable consumer's delivered sequence and ack floor.
func (x *express) floors(info *jetstream.ConsumerInfo, ix *backlog.Index) {
	x.noteFetched(info.Delivered.Stream)
	x.floor.Store(info.AckFloor.Stream)
	ix.Settled(info.AckFloor.Stream)
}

// aheadOutcome is what became of a send ahead.
type aheadOutcome int

const (
	// aheadSettled: posted and recorded, found posted, or left to its delivery.
	aheadSettled aheadOutcome = iota
	// aheadRetry: not sent; the item goes back for a later try.
	aheadRetry
	// aheadElsewhere: another replica's lane holds the claim and sends it. The
	// send's counts of what waits for a grant (ungranted, highUngranted) are
	// handed on to awaitLane, which gives them up.
	aheadElsewhere
)

// awaitLane waits, while another replica's lane holds the claim on seq (at most
// maxYield, until ctx ends), as for a send of this lane's that has no grant yet:
// the order of the bands is global, so this replica's pull loop yields to it, and
// after a High item no Medium send starts here either (the grants are shared:
// whichever replica asks when a slot frees takes it). It then gives up the counts
// send handed on.
func (x *express) awaitLane(ctx context.Context, seq uint64, band backlog.Band) {
	defer func() {
		x.ungranted.Add(-1)
		if band == backlog.High {
			x.highUngranted.Add(-1)
		}
	}()
	deadline := time.Now().Add(maxYield)
	for time.Now().Before(deadline) {
		held, err := x.c.d.Claims.laneHolds(ctx, seq)
		if err != nil || !held || !sleep(ctx, yieldRecheck) {
			return
		}
	}
}

// send posts the message at seq ahead of the stream order: with an urgent grant for
// a High item, an ordinary one for a Medium item.
func (x *express) send(ctx, work context.Context, at instanceAt, seq uint64, band backlog.Band, turn *sendTurn) aheadOutcome {
	c := x.c
	turn.wait(ctx.Done())
	granted := false
	unlock := func() { // once the grant is held, or the send given up
		if !granted {
			granted = true
			x.ungranted.Add(-1)
			if band == backlog.High {
				x.highUngranted.Add(-1)
			}
			turn.start()
		}
	}
	defer unlock()
	if c.d.Claims != nil {
		taken, held, err := c.d.Claims.take(ctx, seq, laneClaim)
		switch {
		case err != nil:
			return aheadRetry
		case !taken && held == laneClaim:
			granted = true // its counts go on to awaitLane
			turn.start()
			return aheadElsewhere
		case !taken:
			return aheadSettled // its delivery has it
		}
		defer c.d.Claims.drop(seq)
		// Only what the durable consumer had not delivered once the claim was in
		// place goes ahead: a replica whose lane is off looks at the claim, taking
		// none (claimOwnTurn), and its delivery from now on finds it.
		info, err := c.d.Consumer.Info(ctx)
		if err != nil {
			return aheadRetry
		}
		if x.gen.Load() != at.gen {
			return aheadSettled // the info may be the old instance's consumer's
		}
		x.noteFetched(info.Delivered.Stream)
	}
	if x.gen.Load() != at.gen {
		return aheadSettled // seq counts in a stream that was since created again
	}
	raw, err := c.d.Stream.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return aheadSettled // gone from the stream
	case err != nil:
		return aheadRetry
	case seq <= x.delivered.Load():
		return aheadSettled // the durable consumer delivered it meanwhile
	case raw.Header.Get(topology.HeaderRequeuedFrom) != "" || raw.Header.Get(dlq.HeaderRedrivenFrom) != "":
		return aheadSettled // a copy is posted whatever the ledger says: only by its delivery
	}
	item, err := ionix.Decode(raw.Data)
	if err != nil {
		return aheadSettled // its delivery dead-letters it
	}
	urgent := band == backlog.High
	g, err := c.acquireSend(ctx, urgent)
	if err != nil {
		return aheadRetry
	}
	unlock()
	if x.gen.Load() != at.gen {
		c.releaseGrant(context.Background(), g, 1)
		return aheadSettled // the message is the old instance's: not posted as the new one's
	}
	msg := &aheadMsg{raw: raw}
	t := c.locks.reserve(item.ID)
	defer t.done()
	left := false
	d := delivery{msg: msg, meta: msg.meta(), item: item, turn: t, stream: at.stream,
		express: &expressFacts{urgent: urgent, left: &left}, grant: &g, stop: ctx}
	// Deliveries read the ledger from before the request on (the flag is set before
	// it, dropped by nothing if it was not made: only the ack floor lowers it).
	storeMax(&x.ahead, seq)
	if !c.handle(work, d) {
		c.releaseGrant(context.Background(), g, 1)
	}
	if left {
		return aheadSettled
	}
	// Sent and recorded — or not: the ledger says.
	if e, found, err := c.d.Ledger.Get(ctx, item.ID); err == nil && found && e.Stream == d.stream && e.StreamSeq >= seq {
		return aheadSettled
	}
	return aheadRetry
}

// expressFacts mark a delivery read ahead by the express lane.
type expressFacts struct {
	urgent bool  // a High item: its grant is renewed as urgent
	left   *bool // set when the decision left it to its delivery
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
	// Bounded: a lane that cannot make progress holds the stream order back no
	// longer than this.
	deadline := time.Now().Add(maxYield)
	for x.waiting() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// waiting reports whether the lane has a Medium (or High) item to send that the
// durable consumer has not delivered, or one taken that has no grant yet.
func (x *express) waiting() bool {
	if !x.engaged() || x.c.brk.isOpen() {
		return false
	}
	if x.ungranted.Load() > 0 {
		return true
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
