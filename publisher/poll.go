package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/ionix"
)

// Source lists IONIX action items: the open list and the closed list of the IONIX
// API, each item as the API returned it. The cmd wires an ionixapi.Client to it.
type Source interface {
	Open(ctx context.Context, fn func(item json.RawMessage) error) error
	Closed(ctx context.Context, fn func(item json.RawMessage) error) error
}

// Poller publishes what changed in IONIX since the last poll: new open items,
// items whose fields that reach the incident changed, and a closing event for each
// item that left the open list or shows in the closed list. Its memory is the KV
// bucket ionix_seen, so a restart publishes nothing twice.
type Poller struct {
	src  Source
	pub  *Publisher
	seen *Seen
	log  zerolog.Logger
	now  func() time.Time
}

// NewPoller returns a poller publishing through pub.
func NewPoller(src Source, pub *Publisher, seen *Seen, log zerolog.Logger) *Poller {
	return &Poller{src: src, pub: pub, seen: seen, log: log, now: time.Now}
}

// PollResult counts what one poll found and did.
type PollResult struct {
	Open      int       `json:"open"`      // items in the open list
	New       int       `json:"new"`       // published as opened for the first time
	Changed   int       `json:"changed"`   // published again: their incident fields changed
	Reopened  int       `json:"reopened"`  // published as opened after a closing event
	Unchanged int       `json:"unchanged"` // already published as they are
	Closed    int       `json:"closed"`    // closing events published
	Invalid   int       `json:"invalid"`   // items the API returned that are not valid action items
	Problems  []Problem `json:"-"`
}

// Published is how many events the poll published.
func (r PollResult) Published() int { return r.New + r.Changed + r.Reopened + r.Closed }

// ErrListing wraps a failure to read the open list; no closing event is inferred
// from a poll whose open list is incomplete.
var ErrListing = errors.New("cannot read the IONIX open list")

// PollOnce reads the open list, then the closed list, and publishes the events
// they call for. It returns what it did even when it fails part way.
func (p *Poller) PollOnce(ctx context.Context) (PollResult, error) {
	var res PollResult
	open := make(map[string]bool)
	idx := 0
	err := p.src.Open(ctx, func(raw json.RawMessage) error {
		pos := Position{Index: idx}
		idx++
		res.Open++
		item, err := ionix.Decode(raw)
		if item.ID != "" {
			open[item.ID] = true // even when invalid: it is not closed
		}
		if err != nil {
			res.Invalid++
			res.Problems = append(res.Problems, Problem{Pos: pos, ID: item.ID, Err: err})
			p.log.Warn().Err(err).Str("action_item", item.ID).Msg("IONIX returned an invalid action item; not published")
			return nil
		}
		return p.opened(ctx, &res, raw, item)
	})
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrListing, err)
	}
	closedNow := make(map[string]bool)
	err = p.src.Closed(ctx, func(raw json.RawMessage) error {
		item, err := ionix.Decode(raw)
		if err != nil || open[item.ID] || closedNow[item.ID] {
			return nil // the open list wins; an invalid closed item names no incident
		}
		closedNow[item.ID] = true
		return p.closed(ctx, &res, raw, item)
	})
	if err != nil {
		// Items that left the open list are still closed below, from memory.
		p.log.Warn().Err(err).Msg("cannot read the IONIX closed list; closing from the open list only")
	}
	err = p.seen.Each(ctx, func(s SeenItem) error {
		if s.State != SeenOpen || open[s.ID] || closedNow[s.ID] {
			return nil
		}
		raw, item, err := closingBody(s.Item, p.now())
		if err != nil {
			p.log.Warn().Err(err).Str("action_item", s.ID).Msg("remembered item unreadable; no closing event")
			return nil
		}
		return p.closed(ctx, &res, raw, item)
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

// opened publishes an item of the open list unless it was published as it is.
func (p *Poller) opened(ctx context.Context, res *PollResult, raw json.RawMessage, item ionix.ActionItem) error {
	fp := item.Fingerprint()
	prev, found, err := p.seen.Get(ctx, item.ID)
	if err != nil {
		return err
	}
	reopened := found && prev.State == SeenClosed
	count := &res.New
	switch {
	case found && prev.State == SeenOpen && prev.Fingerprint == fp:
		res.Unchanged++
		return nil
	case reopened:
		count = &res.Reopened
	case found:
		count = &res.Changed
	}
	pub := Publication{Event: ionix.EventOpened, N: next(prev, found), Reopened: reopened}
	if err := p.publish(ctx, raw, item, pub); err != nil {
		return err
	}
	*count++
	return p.seen.Put(ctx, SeenItem{ID: item.ID, Fingerprint: fp, State: SeenOpen, PublishedAt: p.now().UTC(), Item: raw, Publications: pub.N + 1})
}

// closed publishes the closing event of an item the poller published as open.
func (p *Poller) closed(ctx context.Context, res *PollResult, raw json.RawMessage, item ionix.ActionItem) error {
	prev, found, err := p.seen.Get(ctx, item.ID)
	if err != nil {
		return err
	}
	if !found || prev.State != SeenOpen {
		return nil // never published, or already closed
	}
	n := next(prev, found)
	if err := p.publish(ctx, raw, item, Publication{Event: ionix.EventClosed, N: n}); err != nil {
		return err
	}
	res.Closed++
	return p.seen.Put(ctx, SeenItem{ID: item.ID, Fingerprint: prev.Fingerprint, State: SeenClosed, PublishedAt: p.now().UTC(), Item: raw, Publications: n + 1})
}

// publish publishes one event of the item. A poll that stopped between a publish and
// the Put of its seen entry publishes the same publication again, which the stream
// drops as a duplicate.
func (p *Poller) publish(ctx context.Context, raw json.RawMessage, item ionix.ActionItem, pub Publication) error {
	dup, err := p.pub.PublishEvent(ctx, raw, item, pub)
	if err != nil {
		return err
	}
	p.log.Info().Str("action_item", item.ID).Str("event", string(pub.Event)).Int("publication", pub.N).
		Bool("reopened", pub.Reopened).Bool("duplicate", dup).Msg("published")
	return nil
}

// closingBody is the remembered item marked closed at the given time: "is_open"
// false and "last_closed_at", every other field as IONIX last returned it.
func closingBody(remembered json.RawMessage, at time.Time) (json.RawMessage, ionix.ActionItem, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(remembered, &fields); err != nil {
		return nil, ionix.ActionItem{}, err
	}
	fields["is_open"] = json.RawMessage("false")
	ts, _ := json.Marshal(at.UTC().Format(time.RFC3339))
	fields["last_closed_at"] = ts
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, ionix.ActionItem{}, err
	}
	item, err := ionix.Decode(raw)
	return raw, item, err
}

// Run polls now and then every interval until ctx ends. A failed poll is logged and
// retried at the next interval. each, when not nil, sees every poll's outcome.
func (p *Poller) Run(ctx context.Context, interval time.Duration, each func(PollResult, error)) {
	for {
		res, err := p.PollOnce(ctx)
		if each != nil {
			each(res, err)
		}
		if ctx.Err() != nil {
			return
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
