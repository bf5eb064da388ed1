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

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/topology"
)

// handle decides the fate of one message and reports whether it spent a send grant
// (made an import request). Posts of one item wait for their turn (the caller ends it).
// stream is the stream instance the message was fetched from (see streamID).
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg, item ionix.ActionItem, decodeErr error, turn *turn, probe bool, stream string) (posted bool) {
	meta, err := msg.Metadata()
	if err != nil {
		c.d.Log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata; terminating it")
		_ = msg.Term()
		return false
	}
	if c.beyondRange(ctx, msg, meta) {
		return false
	}
	c.stats.received.Add(1)
	log := c.d.Log.With().Uint64("stream_seq", meta.Sequence.Stream).Uint64("delivered", meta.NumDelivered).Logger()

	if decodeErr != nil {
		c.deadLetter(ctx, log, msg, meta, DeadInvalid, decodeErr.Error())
		return false
	}
	log = log.With().Str("action_item", ionix.ShortID(item.ID)).Logger()
	ev, ok := eventOf(msg)
	if !ok {
		c.deadLetter(ctx, log, msg, meta, DeadInvalid, "unknown event "+strconv.Quote(msg.Headers().Get(topology.HeaderEvent))+" on subject "+msg.Subject())
		return false
	}
	// The urgency filter applies to opened events only: an item's closing carries its
	// last published fields, which may have fallen below the threshold after its
	// incident was created. For the same reason a reopening (with resolve_on_close)
	// is filtered only once the ledger says its item has no incident — read in its
	// turn, after the posts of the item's earlier events.
	pass, reason := c.o.Filter.Allows(item)
	if !pass && ev == ionix.EventOpened && !(c.o.ResolveOnClose && reopenMarked(msg)) {
		return c.filtered(ctx, log, msg, item, reason)
	}
	waited, err := turn.wait(ctx, func() { _ = msg.InProgress() }, c.o.AckWait/3)
	if err != nil { // shutting down
		c.nakLater(log, msg, meta, nil)
		return false
	}
	if ev == ionix.EventClosed {
		return c.handleClosed(ctx, log, msg, meta, item, probe, eventAt{seq: eventSeq(msg, meta), stream: stream})
	}

	fingerprint := item.Fingerprint()
	at := eventAt{seq: eventSeq(msg, meta), stream: stream}
	requeued := headerSeq(msg, HeaderRequeuedFrom) != 0
	// A first delivery cannot be in the ledger under this fingerprint unless the same
	// item was published again after the duplicate window; coalesce makes that post
	// an update. Only redeliveries, posts that waited for another post of the
	// same item, copies, replays, and (with resolve_on_close) possible reopenings pay
	// for a ledger lookup.
	var view ledgerView
	if meta.NumDelivered > 1 || waited || requeued || headerSeq(msg, HeaderRedrivenFrom) != 0 || c.o.Replay != nil || c.o.ResolveOnClose {
		t, found, err := c.d.Ledger.Get(ctx, item.ID)
		if err != nil {
			c.retryLater(ctx, log, msg, meta, fmt.Errorf("ticket ledger unavailable: %w", err))
			return false
		}
		view = ledgerView{read: true, found: found, t: t}
		if !pass && !(found && t.ticketed()) {
			return c.filtered(ctx, log, msg, item, reason)
		}
		if c.o.ResolveOnClose && found && !t.ticketed() && t.newerThan(at) && meta.NumDelivered > 1 {
			// A closing was recorded while this event had no incident, but an earlier
			// attempt of this event may have created one (its answer or its ledger
			// write lost): the closing's copy resolves it, if it exists.
			if err := c.requeue(ctx, t.StreamSeq, meta.Sequence.Stream, false); err != nil {
				c.retryLater(ctx, log, msg, meta, err)
				return false
			}
		}
		// In a replay the same version is re-sent even behind a newer entry — not
		// behind a closing recorded before the item had an incident.
		if found && (c.o.Replay == nil || t.Fingerprint != fingerprint || !t.ticketed()) && c.superseded(ctx, log, msg, t, at) {
			return false
		}
		// A redelivery of a message already posted (the ledger records its sequence)
		// is acknowledged. Another message with the same fingerprint is a new event —
		// the item published again, or reopened — and is posted (coalesce makes it
		// an update). A requeued copy is posted again whatever the ledger says: that
		// is its purpose.
		if !requeued && found && t.Fingerprint == fingerprint && c.postedAlready(ctx, log, msg, t, at) {
			return false
		}
	}
	if present, ok := c.present(ctx, log, msg, meta, item.ID); present || !ok {
		return false
	}
	if c.reopens(msg, view, at) {
		record := mapping.ReopeningRecord(item, c.o.Mapping, time.Time{})
		return c.post(ctx, log, msg, meta, item.ID, record, Ticket{Fingerprint: fingerprint, Status: StatusReopened}, at, view, probe)
	}
	record, err := mapping.ToRecord(item, c.o.Mapping)
	if err != nil {
		c.deadLetter(ctx, log, msg, meta, DeadInvalid, "cannot map action item: "+err.Error())
		return false
	}
	return c.post(ctx, log, msg, meta, item.ID, record, Ticket{Fingerprint: fingerprint}, at, view, probe)
}

// filtered acknowledges an item a filter leaves out, counted by reason; it reports
// false (no send).
func (c *Consumer) filtered(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, item ionix.ActionItem, reason string) bool {
	c.countFiltered(reason)
	log.Debug().Str("reason", reason).Float64("urgency", item.Urgency).Str("category", item.Type).Msg("filtered")
	c.ack(ctx, log, msg)
	return false
}

// postedAlready acknowledges a redelivery of the message the ledger entry t records
// as posted (in a replay: re-sent by this replay), and reports whether it did.
func (c *Consumer) postedAlready(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, t Ticket, at eventAt) bool {
	if !t.records(at) || c.o.Replay != nil && !c.replayed(t) {
		return false
	}
	c.stats.duplicates.Add(1)
	log.Info().Str("incident", t.Number).Msg("redelivery of an event already posted; acknowledging without a post")
	c.ack(ctx, log, msg)
	return true
}

// post sends the record and settles the message by the outcome: ledger and ack on
// success, dead letter when ServiceNow rejects the item, delayed redelivery otherwise.
// While sending is paused only the probe is sent; other messages fetched before the
// pause go back to the stream unsent. It reports whether a request was made.
// view is what the ledger held when the post was decided, if it was read.
// The ledger records the post as the event at.
func (c *Consumer) post(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, id string, record map[string]string, t Ticket, at eventAt, view ledgerView, probe bool) (sent bool) {
	if !c.brk.sends(probe) {
		log.Debug().Msg("sending is paused; returning the item to the stream unsent")
		c.nakLater(log, msg, meta, nil)
		return false
	}
	started := c.now()
	res, err := c.importKeepingAlive(ctx, msg, record)
	if Unchanged(res) {
		// A coalesced re-post that changes nothing: the incident already holds
		// exactly what we sent.
		err = nil
	}
	c.brk.record(err, started)
	switch {
	case err == nil:
	case errors.Is(err, servicenow.ErrRejected):
		c.deadLetter(ctx, log, msg, meta, DeadRejected, "rejected by ServiceNow: "+err.Error())
		return true
	default:
		c.stats.failed.Add(1)
		c.retryLater(ctx, log, msg, meta, err)
		return true
	}
	log = log.With().Str("incident", res.Number).Logger()
	t.SysID, t.Number, t.SentAt = res.SysID, res.Number, c.now().UTC()
	t.StreamSeq, t.Stream, t.PostedBy = at.seq, at.stream, c.instance
	if t.Status == "" {
		t.Status = res.Status
	}
	c.countSent(t, res)
	prev, found, written, err := c.d.Ledger.Record(ctx, id, t)
	if err != nil {
		// Not acked: the redelivery posts again and coalesce turns it into an update.
		c.retryLater(ctx, log, msg, meta, fmt.Errorf("ServiceNow accepted the item as %s but the ticket ledger write failed (the next attempt updates it): %w", res.Number, err))
		return true
	}
	log.Info().Str("status", res.Status).Msg("sent to ServiceNow")
	// A second incident for the item: the post is in ServiceNow (acked below), but
	// no further post may go out until coalesce is fixed.
	if c.checkCoalesce(ctx, log, msg, id, record, prev, found, res) {
		// The item was posted again to tell: if another replica posted a newer
		// version meanwhile, ours may have overwritten it.
		c.requeueIfOvertaken(ctx, log, id, t, at, meta.Sequence.Stream)
	}
	switch {
	case !written && !harmlessAfter(t, prev):
		// A newer version was posted meanwhile; ours may have reached ServiceNow
		// after it and put older values back.
		c.requeueNewest(ctx, log, prev.StreamSeq, meta.Sequence.Stream, c.o.ResolveOnClose && copyReopens(t, prev), "a newer version was posted while this one was in flight")
	case written && found && prev.PostedBy != c.instance && view.changedTo(prev, started) && !harmlessAfter(prev, t):
		// Another replica posted an older version after we decided (while ours
		// was in flight); it may have reached ServiceNow after ours.
		c.requeueNewest(ctx, log, t.StreamSeq, meta.Sequence.Stream, c.o.ResolveOnClose && copyReopens(prev, t), "an older version was posted by another replica while this one was in flight")
	}
	c.ack(ctx, log, msg)
	return true
}

// countSent counts an accepted post by what it did to the incident.
func (c *Consumer) countSent(t Ticket, res servicenow.Result) {
	switch {
	case t.Status == StatusResolved:
		c.stats.resolved.Add(1)
	case t.Status == StatusReopened:
		c.stats.reopened.Add(1)
	case res.Status == "updated":
		c.stats.updated.Add(1)
	case Unchanged(res):
		c.stats.unchanged.Add(1)
	default:
		c.stats.created.Add(1)
	}
}

// superseded acknowledges, without a post, a message older than the event the ledger
// recorded for its item, and reports whether it did.
func (c *Consumer) superseded(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, t Ticket, at eventAt) bool {
	if !t.newerThan(at) {
		return false
	}
	c.stats.superseded.Add(1)
	log.Info().Str("incident", t.Number).Uint64("ticketed_seq", t.StreamSeq).
		Msg("a newer version of this item is already ticketed; acknowledging without a post")
	c.ack(ctx, log, msg)
	return true
}

// eventSeq is the stream sequence that dates the message's event, and the one the
// ledger records for it: its own, or for a copy the sequence of the message it copies —
// a re-driven dead letter or a requeued version is as old as its original. (Dated by
// the copy's own sequence, a newer version published between the two would look
// older than the copy and be taken for superseded.)
func eventSeq(msg jetstream.Msg, meta *jetstream.MsgMetadata) uint64 {
	if orig := headerSeq(msg, HeaderRedrivenFrom); orig != 0 {
		return orig
	}
	if orig := headerSeq(msg, HeaderRequeuedFrom); orig != 0 {
		return orig
	}
	return meta.Sequence.Stream
}

// headerSeq is the stream sequence in the header (HeaderRedrivenFrom or
// HeaderRequeuedFrom), 0 when the message has none.
func headerSeq(msg jetstream.Msg, header string) uint64 {
	v := msg.Headers().Get(header)
	if v == "" {
		return 0
	}
	seq, _ := strconv.ParseUint(v, 10, 64)
	return seq
}

// requeueNewest puts a copy of the newest version (stream sequence seq) at the end of
// the stream so that it is posted last.
func (c *Consumer) requeueNewest(ctx context.Context, log zerolog.Logger, seq, by uint64, reopen bool, why string) {
	if err := c.requeue(ctx, seq, by, reopen); err != nil {
		log.Warn().Err(err).Uint64("newest_seq", seq).Str("why", why).
			Msg("could not requeue the newest version; the incident may show an older version until the item changes again")
		return
	}
	log.Info().Uint64("newest_seq", seq).Str("why", why).Msg("requeued the newest version so that it is posted last")
}

// importKeepingAlive posts the record, resetting the message's ack timer while the
// request takes long (rate limit pauses, slow instances).
func (c *Consumer) importKeepingAlive(ctx context.Context, msg jetstream.Msg, record map[string]string) (servicenow.Result, error) {
	defer c.keepAlive(msg)()
	return c.d.Importer.Import(ctx, record)
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
	if err := c.d.DeadLetters.Store(ctx, msg, meta.Sequence.Stream, reason); err != nil {
		log.Error().Err(err).Str("reason", reason).Msg("could not store dead letter; the message stays on the stream")
		c.nakLater(log, msg, meta, nil)
		return
	}
	c.stats.countDead(kind)
	log.Warn().Str("reason", reason).Str("kind", string(kind)).Msg("dead-lettered")
	if err := msg.TermWithReason(shortReason(reason)); err != nil {
		log.Warn().Err(err).Msg("terminate failed; the redelivery will be dead-lettered again under the same id")
	}
}

func (c *Consumer) ack(ctx context.Context, log zerolog.Logger, msg jetstream.Msg) {
	if err := msg.DoubleAck(ctx); err != nil {
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
