package publisher

import (
	"context"
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

// PublishEvent is Publish for the publication pub.
func (p *Publisher) PublishEvent(ctx context.Context, raw []byte, item ionix.ActionItem, pub Publication) (duplicate bool, err error) {
	msg := p.message(raw, item, pub.Event)
	if pub.Reopened && pub.Event == ionix.EventOpened {
		msg.Header.Set(topology.HeaderReopened, "true")
	}
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ionix.MsgIDNth(item, pub.Event, pub.N)))
	if err != nil {
		return false, fmt.Errorf("publish %q: %w", item.ID, err)
	}
	return ack.Duplicate, nil
}

// message is the message of one event of item, without its de-duplication id.
func (p *Publisher) message(raw []byte, item ionix.ActionItem, ev ionix.Event) *nats.Msg {
	msg := nats.NewMsg(ionix.Subject(p.prefix, ev, item.Type))
	msg.Header.Set(topology.HeaderEvent, string(ev))
	msg.Data = raw
	return msg
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
	// read or decoded; each is in Problems.
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
