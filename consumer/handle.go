package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/topology"
)

// handle settles one delivered message and reports whether it spent a send grant
// (made an import request): it gathers the facts decide asks for (the item's turn,
// its ledger entry, in a missing-only replay whether its incident exists), then does
// what decide answers. Posts of one item wait for their turn (the caller ends it).
func (c *Consumer) handle(ctx context.Context, d delivery) (posted bool) {
	if otherTenants(c.itemPrefix, d.msg.Subject()) {
		if d.express != nil {
			*d.express.left = true
			return false
		}
		// Routing, not a decision about the item: it is not this tenant's.
		c.stats.otherTenant.Add(1)
		c.d.Log.Debug().Str("subject", d.msg.Subject()).Msg("another tenant's item; not this consumer's to send")
		c.ack(ctx, c.d.Log, d.msg)
		return false
	}
	c.observe(&d)
	held, careful, release := c.claimOwnTurn(ctx, &d)
	if held {
		// The express lane of a replica is sending it ahead: its redelivery, soon,
		// finds it in the ledger.
		if err := c.nak(d.msg, retryAhead); err != nil {
			d.log.Warn().Err(err).Msg("nak failed; the message is redelivered after AckWait")
		}
		return false
	}
	if release != nil {
		defer release()
	}
	m := c.mode()
	if d.express != nil || careful {
		m.overtaking = true // its own post may be in the ledger (another replica's lane)
	}
	a := decide(d.facts, d.state, m)
	if a.kind != actTerminate && !a.is(ackOutsidePass) && d.express == nil {
		c.stats.received.Add(1) // counted once, at its delivery
	}
	for a.gathers() {
		c.gather(ctx, &d, a.kind)
		a = decide(d.facts, d.state, m)
	}
	return c.settle(ctx, &d, a)
}

// otherTenants reports whether subject is another tenant's item: below prefix (with
// its dot; "": no check), with more than the two tokens <event>.<category> after it
// (a tenant's items are <prefix>.<tenant>.<event>.<category>, SPEC §9).
func otherTenants(prefix, subject string) bool {
	if prefix == "" {
		return false
	}
	rest, ok := strings.CutPrefix(subject, prefix)
	return ok && strings.Count(rest, ".") >= 2
}

// settle does what decide answered. Read ahead by the express lane, a message is
// only posted: anything else is for its delivery.
func (c *Consumer) settle(ctx context.Context, d *delivery, a action) (posted bool) {
	if d.express != nil && !expressMayPost(d, a, c.o.ResolveOnClose) {
		*d.express.left = true
		return false
	}
	switch a.kind {
	case actTerminate:
		c.d.Log.Error().Err(d.cause).Str("subject", d.msg.Subject()).Msg("message without JetStream metadata; terminating it")
		_ = d.msg.Term()
	case actAck:
		c.ackUnposted(ctx, d, a)
	case actDeadLetter:
		c.deadLetter(ctx, d.log, d.msg, d.meta, DeadInvalid, d.invalid)
	case actRetryLater:
		c.retryLater(ctx, d.log, d.msg, d.meta, d.cause)
	case actReturnUnsent:
		c.nakLater(d.log, d.msg, d.meta, nil)
	case actRecordClosing:
		return c.recordClosing(ctx, d)
	case actPost:
		return c.postAs(ctx, d, a.post)
	}
	return false
}

// ackUnposted acknowledges a message without a post, counted and logged by the
// reason; a superseded event that must requeue the closing the ledger records does
// that first.
func (c *Consumer) ackUnposted(ctx context.Context, d *delivery, a action) {
	log := d.log
	switch a.ack {
	case ackOutsidePass:
		log = c.d.Log
	case ackFiltered:
		c.countFiltered(d.facts.filteredBy)
		log.Debug().Str("reason", d.facts.filteredBy).Float64("urgency", d.item.Urgency).Str("category", d.item.Type).Msg("filtered")
	case ackClosedIgnored:
		c.stats.filteredClosed.Add(1)
		log.Debug().Msg("closing event ignored (resolve_on_close is off)")
	case ackSuperseded:
		if a.requeueClosing {
			if err := c.requeue(ctx, d.entry.StreamSeq, d.meta.Sequence.Stream, false); err != nil {
				c.retryLater(ctx, log, d.msg, d.meta, err)
				return
			}
		}
		c.stats.superseded.Add(1)
		log.Info().Str("incident", d.entry.Number).Uint64("ticketed_seq", d.entry.StreamSeq).
			Msg("a newer version of this item is already ticketed; acknowledging without a post")
	case ackDuplicate:
		c.stats.duplicates.Add(1)
		log.Info().Str("incident", d.entry.Number).Msg("redelivery of an event already posted; acknowledging without a post")
	case ackPresent:
		c.stats.present.Add(1)
		log.Debug().Msg("incident still exists; not re-sent")
	}
	c.ack(ctx, log, d.msg)
}

// postAs posts the record of kind k for the delivery's item.
func (c *Consumer) postAs(ctx context.Context, d *delivery, k postKind) (posted bool) {
	fingerprint := d.facts.fingerprint
	switch k {
	case postReopen:
		return c.post(ctx, d, mapping.ReopeningRecord(d.item, c.o.Mapping, time.Time{}), ledger.Ticket{Fingerprint: fingerprint, Status: ledger.StatusReopened})
	case postResolve:
		return c.postClosing(ctx, d)
	}
	record, err := mapping.ToRecord(d.item, c.o.Mapping)
	if err != nil {
		c.deadLetter(ctx, d.log, d.msg, d.meta, DeadInvalid, "cannot map action item: "+err.Error())
		return false
	}
	return c.post(ctx, d, record, ledger.Ticket{Fingerprint: fingerprint})
}

// post sends the record and settles the message by the outcome: ledger and ack on
// success, dead letter when ServiceNow rejects the item, delayed redelivery otherwise.
// While sending is paused only the probe is sent; other messages fetched before the
// pause go back to the stream unsent. It reports whether a request was made.
// The ledger records the post, as t, for the delivery's event.
func (c *Consumer) post(ctx context.Context, d *delivery, record map[string]string, t ledger.Ticket) (sent bool) {
	log, msg, meta := d.log, d.msg, d.meta
	// The breaker is asked once the send may go (after a 429 pause, a shared slot,
	// a grant renewed): each of those can wait, and sending may pause or halt
	// meanwhile.
	if !c.brk.sends(d.probe) { // asked before the waits too: a paused tenant waits for nothing
		log.Debug().Msg("sending is paused; returning the item to the stream unsent")
		c.nakLater(log, msg, meta, nil)
		return false
	}
	stopKeepAlive := c.keepAlive(msg) // waiting to send and the request can both be long
	release, err := c.waitToSend(ctx, d)
	if err != nil {
		stopKeepAlive()
		if d.stop != nil && d.stop.Err() != nil {
			c.stopping.Store(true) // the nak is confirmed (see nak)
			if err := c.nak(msg, 0); err != nil {
				log.Warn().Err(err).Msg("nak failed; the message is redelivered after AckWait")
			}
			return false
		}
		c.nakLater(log, msg, meta, fmt.Errorf("waiting to send: %w", err))
		return false
	}
	if !c.brk.sends(d.probe) {
		release()
		stopKeepAlive()
		log.Debug().Msg("sending is paused; returning the item to the stream unsent")
		c.nakLater(log, msg, meta, nil)
		return false
	}
	started := c.now()
	d.sendTurn.start()
	res, err := c.d.Importer.Import(ctx, record)
	release()
	stopKeepAlive()
	if Unchanged(res) {
		// A coalesced re-post that changes nothing: the incident already holds
		// exactly what we sent.
		err = nil
	}
	c.brk.record(err, started)
	switch {
	case err == nil:
	case d.express != nil:
		// Its delivery posts it again, and dead-letters or retries it then.
		log.Info().Err(err).Msg("sent ahead of the stream order and failed; its delivery tries again")
		return true
	case errors.Is(err, servicenow.ErrRejected):
		c.deadLetter(ctx, log, msg, meta, DeadRejected, "rejected by ServiceNow: "+err.Error())
		return true
	default:
		c.stats.failed.Add(1)
		c.retryLater(ctx, log, msg, meta, err)
		return true
	}
	log = log.With().Str("incident", res.Number).Logger()
	at := d.facts.at
	t.SysID, t.Number, t.SentAt = res.SysID, res.Number, c.now().UTC()
	t.StreamSeq, t.Stream, t.PostedBy = at.seq, at.stream, c.instance
	if t.Status == "" {
		t.Status = res.Status
	}
	c.countSent(t, res)
	prev, found, written, err := c.d.Ledger.Record(ctx, d.item.ID, t)
	if err != nil && d.express != nil {
		// Its delivery posts again; coalesce turns that into an update.
		log.Warn().Err(err).Msg("sent ahead of the stream order; the ticket ledger write failed")
		return true
	}
	if err != nil {
		// Not acked: the redelivery posts again and coalesce turns it into an update.
		c.retryLater(ctx, log, msg, meta, fmt.Errorf("ServiceNow accepted the item as %s but the ticket ledger write failed (the next attempt updates it): %w", res.Number, err))
		return true
	}
	log.Info().Str("status", res.Status).Msg("sent to ServiceNow")
	// A second incident for the item: the post is in ServiceNow (acked below), but
	// no further post may go out until coalesce is fixed.
	if c.checkCoalesce(ctx, d, log, record, prev, found, res) {
		// The item was posted again to tell: if another replica posted a newer
		// version meanwhile, ours may have overwritten it.
		c.requeueIfOvertaken(ctx, log, d.item.ID, t, at, meta.Sequence.Stream)
	}
	if rq, ok := afterPost(postOutcome{posted: t, prev: prev, found: found, written: written, view: d.view(), started: started}, c.instance, c.mode()); ok {
		c.requeueNewest(ctx, log, rq, meta.Sequence.Stream)
	}
	c.ack(ctx, log, msg)
	return true
}

// countSent counts an accepted post by what it did to the incident.
func (c *Consumer) countSent(t ledger.Ticket, res servicenow.Result) {
	switch {
	case t.Status == ledger.StatusResolved:
		c.stats.resolved.Add(1)
	case t.Status == ledger.StatusReopened:
		c.stats.reopened.Add(1)
	case res.Status == "updated":
		c.stats.updated.Add(1)
	case Unchanged(res):
		c.stats.unchanged.Add(1)
	default:
		c.stats.created.Add(1)
	}
}

// headerSeq is the stream sequence in the header (dlq.HeaderRedrivenFrom or
// topology.HeaderRequeuedFrom), 0 when the message has none.
func headerSeq(msg jetstream.Msg, header string) uint64 {
	v := msg.Headers().Get(header)
	if v == "" {
		return 0
	}
	seq, _ := strconv.ParseUint(v, 10, 64)
	return seq
}

// requeueNewest puts a copy of the newest version (rq) at the end of the stream so
// that it is posted last; by is the stream sequence of the message that found it.
func (c *Consumer) requeueNewest(ctx context.Context, log zerolog.Logger, rq requeueOrder, by uint64) {
	if err := c.requeue(ctx, rq.seq, by, rq.reopen); err != nil {
		log.Warn().Err(err).Uint64("newest_seq", rq.seq).Str("why", rq.why).
			Msg("could not requeue the newest version; the incident may show an older version until the item changes again")
		return
	}
	log.Info().Uint64("newest_seq", rq.seq).Str("why", rq.why).Msg("requeued the newest version so that it is posted last")
}

// keepAlive marks msg in progress every third of AckWait until the returned stop is
// called. A timer, not a goroutine: nothing runs unless the work outlasts a third of
// AckWait.
func (c *Consumer) keepAlive(msg jetstream.Msg) (stop func()) {
	every := c.o.AckWait / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// Unchanged tells a re-post that ServiceNow ignored because the incident it coalesced
// on already holds the same values ("ignored", "No field values changed", with the
// incident's sys_id) from an item the transform refused (no incident named).
func Unchanged(res servicenow.Result) bool {
	return res.Status == "ignored" && res.SysID != "" && res.Number != ""
}

// retryLater returns the message for redelivery after a delay that grows with its
// delivery count (or ServiceNow's Retry-After), capped at MaxBackoff. On the last
// delivery MaxDeliver allows, it dead-letters the message instead.
func (c *Consumer) retryLater(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, cause error) {
	if c.o.MaxDeliver > 0 && meta.NumDelivered >= uint64(c.o.MaxDeliver) {
		c.deadLetter(ctx, log, msg, meta, DeadMaxDeliver, fmt.Sprintf("%s after %d deliveries (consumer.max_deliver): %v", ReasonMaxDeliver, meta.NumDelivered, cause))
		return
	}
	c.nakLater(log, msg, meta, cause)
}

// nakLater returns the message for a later redelivery.
func (c *Consumer) nakLater(log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, cause error) {
	delay := c.redeliveryDelay(meta.NumDelivered, cause)
	if cause != nil {
		ev := log.Warn().Err(cause).Dur("retry_in", delay)
		var se *servicenow.Error
		if errors.As(cause, &se) && se.Fix != "" {
			ev = ev.Str("fix", se.Fix)
		}
		ev.Msg("not delivered; the item stays on the stream for another attempt")
	}
	if err := c.nak(msg, delay); err != nil {
		log.Warn().Err(err).Msg("nak failed; the message is redelivered after AckWait")
	}
}

func (c *Consumer) redeliveryDelay(delivered uint64, cause error) time.Duration {
	d := time.Second
	for i := uint64(1); i < delivered && d < c.o.MaxBackoff; i++ {
		d *= 2
	}
	var se *servicenow.Error
	if errors.As(cause, &se) && se.RetryAfter > d {
		d = se.RetryAfter
	}
	return min(d, c.o.MaxBackoff)
}

func (c *Consumer) deadLetter(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, kind DeadKind, reason string) {
	if err := c.d.DeadLetters.Put(ctx, msg, meta.Sequence.Stream, reason); err != nil {
		log.Error().Err(err).Str("reason", reason).Msg("could not store dead letter; the message stays on the stream")
		c.nakLater(log, msg, meta, nil)
		return
	}
	c.stats.countDead(kind)
	log.Warn().Str("reason", reason).Str("kind", string(kind)).Msg("dead-lettered")
	if err := msg.TermWithReason(dlq.ShortReason(reason)); err != nil {
		log.Warn().Err(err).Msg("terminate failed; the redelivery will be dead-lettered again under the same id")
	}
}

// ack acknowledges msg. A plain ack, unconfirmed: one that is lost brings the message
// back after AckWait, and the ledger (which records every post before its ack)
// recognises the redelivery. While the consumer stops, the server's confirmation is
// awaited (a double ack), so that the process does not exit with it unsent.
func (c *Consumer) ack(ctx context.Context, log zerolog.Logger, msg jetstream.Msg) {
	var err error
	if c.stopping.Load() {
		// Not with ctx: cancelled at the drain timeout, it would not even send it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout)
		err = msg.DoubleAck(cctx)
		cancel()
	} else {
		err = msg.Ack()
	}
	if err != nil {
		log.Warn().Err(err).Msg("ack not confirmed; a redelivery will be recognised by the ledger")
	}
}

func (c *Consumer) countFiltered(reason string) {
	switch reason {
	case "category":
		c.stats.filteredCategory.Add(1)
	default:
		c.stats.filteredUrgency.Add(1)
	}
}

// eventOf reads the event from the Ionix-Event header, or else from the subject
// (<prefix>.<event>.<category>).
func eventOf(msg jetstream.Msg) (ionix.Event, bool) {
	ev := msg.Headers().Get(topology.HeaderEvent)
	if ev == "" {
		parts := strings.Split(msg.Subject(), ".")
		if len(parts) >= 2 {
			ev = parts[len(parts)-2]
		}
	}
	switch ionix.Event(ev) {
	case ionix.EventOpened, ionix.EventClosed:
		return ionix.Event(ev), true
	}
	return "", false
}

// expressMayPost reports whether the express lane may post a message read ahead: a
// post, but not over an item whose ledger says closed (resolved, or a closing
// recorded without an incident) unless the event is a marked reopening — a
// reopening earlier in the stream must reopen the incident first, in its place.
func expressMayPost(d *delivery, a action, resolveOnClose bool) bool {
	if a.kind != actPost {
		return false
	}
	closed := d.state.phase == phaseResolved || d.state.phase == phaseClosedUnticketed
	return !resolveOnClose || !closed || d.facts.reopenMarked
}
