package consumer

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/topology"
)

// delivery is one message in hand and what is learnt about it while it is handled.
type delivery struct {
	msg       jetstream.Msg
	item      ionix.ActionItem // decoded in fetch order
	decodeErr error            // why the body is not a valid item
	turn      *turn            // the item's place among its messages (nil: none needed)
	probe     bool             // the one message sent while sending is paused
	// sendTurn, when set, is its place in the send order (sendorder.go).
	sendTurn *sendTurn
	// express, when set, marks a message read ahead of its delivery by the express
	// lane (express.go), which only posts; anything else is left to the message's
	// own delivery.
	express *expressFacts
	stream  string // the stream instance it was fetched from (see streamID)
	// grant is the budget grant its send counts against, renewed before the send
	// when it went stale (see Consumer.readyToSend); nil: none (the cap is off).
	grant *budget.Grant
	// stop is Run's context: the waits before a send end with it (the send's own
	// context lasts through the drain). Nil: none but the send's.
	stop context.Context

	meta  *jetstream.MsgMetadata
	log   zerolog.Logger
	facts eventFacts
	state itemState
	entry ledger.Ticket // the ledger entry state was derived from (when it was read)
	// invalid is why the message is dead-lettered as invalid; cause is why a fact
	// could not be read (the message is retried later).
	invalid string
	cause   error
}

// waitCtx is the context of the waits before the send: ctx, ended too when Run's
// context ends. Call done when the waits are over.
func (d *delivery) waitCtx(ctx context.Context) (wctx context.Context, done func()) {
	if d.stop == nil {
		return ctx, func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(d.stop, cancel)
	return wctx, func() { stop(); cancel() }
}

// mode is how the consumer runs (see modeOf), and whether the express lane may have
// sent items ahead of the stream order.
func (c *Consumer) mode() mode {
	m := modeOf(c.o)
	m.overtaking = c.x.engaged()
	return m
}

// observe reads the facts the message itself carries: its metadata (read by the pull
// loop already), its event, the filter's verdict, whether it is a copy, and the
// event's date.
func (c *Consumer) observe(d *delivery) {
	meta := d.meta // read by the pull loop
	if meta == nil {
		var err error
		if meta, err = d.msg.Metadata(); err != nil {
			d.facts.kind, d.cause = evNoMetadata, err
			return
		}
		d.meta = meta
	}
	d.facts.seq, d.facts.later = meta.Sequence.Stream, meta.NumDelivered > 1
	d.log = c.d.Log.With().Uint64("stream_seq", meta.Sequence.Stream).Uint64("delivered", meta.NumDelivered).Logger()
	if d.decodeErr != nil {
		d.facts.kind, d.invalid = evUndecodable, d.decodeErr.Error()
		return
	}
	d.log = d.log.With().Str("action_item", ionix.ShortID(d.item.ID)).Logger()
	ev, ok := eventOf(d.msg)
	if !ok {
		d.facts.kind = evUnknown
		d.invalid = "unknown event " + strconv.Quote(d.msg.Headers().Get(topology.HeaderEvent)) + " on subject " + d.msg.Subject()
		return
	}
	d.facts.kind = evOpened
	if ev == ionix.EventClosed {
		d.facts.kind = evClosed
	}
	d.facts.reopenMarked = reopenMarked(d.msg)
	if pass, reason := c.o.Filter.Allows(d.item); !pass {
		d.facts.filteredBy = reason
	}
	requeuedFrom, redrivenFrom := headerSeq(d.msg, topology.HeaderRequeuedFrom), headerSeq(d.msg, dlq.HeaderRedrivenFrom)
	switch {
	case requeuedFrom != 0:
		d.facts.copy = copyRequeued
	case redrivenFrom != 0:
		d.facts.copy = copyRedriven
	}
	// The sequence that dates the event, and the one the ledger records for it: its
	// own, or for a copy the sequence of the message it copies — a re-driven dead
	// letter or a requeued version is as old as its original. (Dated by the copy's own
	// sequence, a newer version published between the two would look older than the
	// copy and be taken for superseded.)
	seq := meta.Sequence.Stream
	switch {
	case redrivenFrom != 0:
		seq = redrivenFrom
	case requeuedFrom != 0:
		seq = requeuedFrom
	}
	d.facts.at = eventAt{seq: seq, stream: d.stream}
	d.facts.fingerprint = d.item.Fingerprint()
}

// gather finds out the fact decide asked for (an action that gathers).
func (c *Consumer) gather(ctx context.Context, d *delivery, what actionKind) {
	switch what {
	case actWaitTurn:
		waited, err := d.turn.wait(ctx, func() { _ = d.msg.InProgress() }, c.o.AckWait/3)
		switch {
		case err != nil: // shutting down
			d.facts.turn = turnCancelled
		case waited:
			d.facts.turn = turnWaited
		default:
			d.facts.turn = turnFirst
		}
	case actReadLedger:
		t, found, err := c.d.Ledger.Get(ctx, d.item.ID)
		if err != nil {
			d.state, d.cause = itemState{phase: phaseUnavailable}, fmt.Errorf("ticket ledger unavailable: %w", err)
			return
		}
		d.setEntry(t, found)
	case actAskPresence:
		present, err := c.o.Replay.Present(ctx, d.item.ID)
		switch {
		case err != nil:
			d.facts.presence, d.cause = presenceUnavailable, fmt.Errorf("cannot tell whether the incident exists: %w", err)
		case present:
			d.facts.presence = presencePresent
		default:
			d.facts.presence = presenceAbsent
		}
	}
}

// setEntry takes the item's ledger entry (found false: none) as its state.
func (d *delivery) setEntry(t ledger.Ticket, found bool) {
	d.entry, d.state = t, stateOf(t, found)
}

// view is what the ledger held when the post was decided, if it was read.
func (d *delivery) view() ledgerView {
	return ledgerView{read: d.state.phase != phaseUnread, found: d.state.found(), t: d.entry}
}
