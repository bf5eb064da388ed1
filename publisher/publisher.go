package publisher

import (
	"context"
	"fmt"
	"io"

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
// when empty).
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
	msg := nats.NewMsg(ionix.Subject(p.prefix, ev, item.Type))
	msg.Header.Set(topology.HeaderEvent, string(ev))
	msg.Data = raw
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ionix.MsgID(item, ev)))
	if err != nil {
		return false, fmt.Errorf("publish %q: %w", item.ID, err)
	}
	return ack.Duplicate, nil
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
	Published  int       `json:"published"`
	Duplicates int       `json:"duplicate"`
	Invalid    int       `json:"invalid"`
	Problems   []Problem `json:"-"`
}

// PublishAll reads action items from r (see ReadItems) and publishes each valid one
// as event ev. Invalid items are reported in the result with their position and
// reason; the valid ones are published anyway. progress, when not nil, is called
// after each item. An error is returned only when the input became unreadable or the
// stream refused a publish; the result then counts what was done before.
func (p *Publisher) PublishAll(ctx context.Context, r io.Reader, ev ionix.Event, progress func(Result)) (Result, error) {
	var res Result
	err := ReadItems(r, func(raw Raw) error {
		defer func() {
			if progress != nil {
				progress(res)
			}
		}()
		if raw.Err != nil {
			res.Invalid++
			res.Problems = append(res.Problems, Problem{Pos: raw.Pos, Err: raw.Err})
			return nil
		}
		item, err := ionix.Decode(raw.Data)
		if err != nil {
			res.Invalid++
			res.Problems = append(res.Problems, Problem{Pos: raw.Pos, ID: item.ID, Err: err})
			return nil
		}
		dup, err := p.Publish(ctx, raw.Data, item, ev)
		if err != nil {
			return fmt.Errorf("%s: %w", raw.Pos, err)
		}
		if dup {
			res.Duplicates++
		} else {
			res.Published++
		}
		return nil
	})
	return res, err
}
