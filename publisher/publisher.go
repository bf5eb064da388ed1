package publisher

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// Publisher publishes action-item events to the stream.
type Publisher struct {
	js     jetstream.JetStream
	prefix string
	// tenant, for a tenant's publisher (SPEC §9), starts every message id
	// ("%t<tenant>:<id>:<event>:<fingerprint>"): the stream's duplicate window is
	// shared, and two customers' items with one id are not duplicates. "%t" never
	// starts an id of the single-tenant form (an escaped id has a hex digit after %).
	tenant string
}

// ForTenant returns a publisher of tenant t's items: under prefix (the tenant's
// topology.Names.ItemSubjectPrefix), with message ids that start with "<t>:". For ""
// or "default" it is New's; message ids start with "%t<t>:".
func ForTenant(js jetstream.JetStream, prefix, t string) *Publisher {
	p := New(js, prefix)
	if t != topology.DefaultTenant {
		p.tenant = t
	}
	return p
}

// New returns a publisher for subjects under prefix (topology.DefaultSubjectPrefix
// when empty). js may be nil for a publisher that only does dry runs.
func New(js jetstream.JetStream, prefix string) *Publisher {
	if prefix == "" {
		prefix = topology.DefaultSubjectPrefix
	}
	return &Publisher{js: js, prefix: prefix}
}

// Publish publishes one event of a valid item whose original JSON is raw. duplicate
// is true when the stream already held the same event of the same item (same id and
// fingerprint) within its duplicate window.
func (p *Publisher) Publish(ctx context.Context, raw []byte, item ionix.ActionItem, ev ionix.Event) (duplicate bool, err error) {
	return p.PublishEvent(ctx, raw, item, Publication{Event: ev})
}

// Publication says which event of an item a message carries.
type Publication struct {
	Event ionix.Event
	// N numbers the item's publications by a publisher that counts them (the
	// poller): the message id is ionix.MsgIDNth, so that a reopening or a change
	// back to an earlier version is not taken for a duplicate. 0 for the first.
	N int
	// Reopened marks an opened event of an item IONIX had closed
	// (topology.HeaderReopened).
	Reopened bool
}

// PublishEvent is Publish for the publication pub. A message that would not fit
// within MaxPayload is not sent: the error is a *TooLargeError.
func (p *Publisher) PublishEvent(ctx context.Context, raw []byte, item ionix.ActionItem, pub Publication) (duplicate bool, err error) {
	msg := p.eventMessage(raw, item, pub)
	if err := fits(msg, p.MaxPayload(0)); err != nil {
		return false, err
	}
	return p.send(ctx, msg, item.ID)
}

// send publishes a message built (and checked against MaxPayload) by the caller.
func (p *Publisher) send(ctx context.Context, msg *nats.Msg, id string) (duplicate bool, err error) {
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return false, fmt.Errorf("publish %s: %w", ionix.QuoteID(id), err)
	}
	return ack.Duplicate, nil
}

// eventMessage is the message of the publication pub.
func (p *Publisher) eventMessage(raw []byte, item ionix.ActionItem, pub Publication) *nats.Msg {
	msg := p.message(raw, item, pub.Event, ionix.MsgIDNth(item, pub.Event, pub.N))
	if pub.Reopened && pub.Event == ionix.EventOpened {
		msg.Header.Set(topology.HeaderReopened, "true")
	}
	return msg
}

// message is the message of one event of item, with its de-duplication id.
func (p *Publisher) message(raw []byte, item ionix.ActionItem, ev ionix.Event, msgID string) *nats.Msg {
	msg := nats.NewMsg(ionix.Subject(p.prefix, ev, item.Type))
	msg.Header.Set(topology.HeaderEvent, string(ev))
	msg.Header.Set(jetstream.MsgIDHeader, p.msgID(msgID))
	msg.Data = raw
	return msg
}

// msgID is the message id of the item's de-duplication id: with the tenant first
// for a tenant's publisher.
func (p *Publisher) msgID(id string) string {
	if p.tenant == "" {
		return id
	}
	return "%t" + p.tenant + ":" + id
}

// DefaultMaxPayload is the largest message a NATS server takes unless configured
// otherwise (max_payload, 1 MiB): the limit of a dry run.
const DefaultMaxPayload = 1 << 20

// MaxPayload is the largest message, body and headers, the publisher sends: the
// connected server's max_payload, or DefaultMaxPayload without a connection;
// limit, when positive, lowers it.
func (p *Publisher) MaxPayload(limit int64) int64 {
	server := int64(0)
	if p.js != nil {
		server = p.js.Conn().MaxPayload() // 0 before the first connection
	}
	switch {
	case limit > 0 && (server <= 0 || limit < server):
		return limit
	case server > 0:
		return server
	default:
		return DefaultMaxPayload
	}
}

// ErrTooLarge is wrapped by the error of an item whose message would exceed the
// server's message size limit; the item is reported, never sent.
var ErrTooLarge = errors.New("too large for one NATS message")

// TooLargeError is an item whose message (or the poller's record of it) would
// not fit in one NATS message. It wraps ErrTooLarge.
type TooLargeError struct {
	What  string // what would not fit: its message, body and headers, or a record of it
	Size  int64  // bytes it would take
	Limit int64  // the server's limit (max_payload)
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%v: its %s would be %d bytes, over the limit of %d bytes (NATS max_payload)", ErrTooLarge, e.What, e.Size, e.Limit)
}

// Unwrap returns ErrTooLarge.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// fits checks that msg takes at most limit bytes on the wire, headers included,
// as the server counts it against max_payload.
func fits(msg *nats.Msg, limit int64) error {
	size := int64(msg.Size() - len(msg.Subject) - len(msg.Reply))
	if size > limit {
		return &TooLargeError{What: "message (body and headers)", Size: size, Limit: limit}
	}
	return nil
}

// Problem is an input item that was not published.
type Problem struct {
	Pos Position
	ID  string // the item's id when it had one
	Err error
}

func (p Problem) String() string {
	if p.ID != "" {
		return fmt.Sprintf("%s (id %q): %v", p.Pos, p.ID, p.Err)
	}
	return fmt.Sprintf("%s: %v", p.Pos, p.Err)
}

// Result counts what PublishAll did.
type Result struct {
	// Published counts the items the stream stored; in a dry run, the items that
	// would be published (valid, and not repeated in the input).
	Published int `json:"published"`
	// Duplicates counts the items the stream already held (same id, event and
	// fingerprint within its duplicate window); never counted in a dry run.
	Duplicates int `json:"duplicate"`
	// Invalid counts the items that were not published because they could not be
	// read or decoded, or would not fit in one message; each is in Problems.
	Invalid int `json:"invalid"`
	// Repeated counts, in a dry run, the items whose message id already appeared
	// earlier in the input; each is in Repeats. (A real run has the stream count
	// them as duplicates.)
	Repeated int `json:"repeated,omitempty"`
	// Unconfirmed counts the valid items sent whose publish was not acknowledged
	// when PublishAll stopped with an error: refused, or unanswered (these may or
	// may not be stored; publishing the same input again is safe).
	Unconfirmed int `json:"unconfirmed,omitempty"`
	// DryRun is true when nothing was published (PublishAllOptions.DryRun).
	DryRun   bool      `json:"dry_run,omitempty"`
	Problems []Problem `json:"-"`
	Repeats  []Repeat  `json:"-"`
}

// Repeat is an item whose message id (id, event and fingerprint) already
// appeared earlier in the same input.
type Repeat struct {
	Pos   Position
	ID    string
	First Position // where the same message id appeared first
}

func (r Repeat) String() string {
	return fmt.Sprintf("%s (id %q): same item and version as %s", r.Pos, r.ID, r.First)
}
