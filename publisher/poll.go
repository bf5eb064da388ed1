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
	// Timeout caps the time of one poll (DefaultPollTimeout when not positive).
	// A poll that reaches it stops where it is and fails with ErrPollTimeout:
	// what it published stays published and remembered, and no closing is
	// inferred from an open list it did not read whole.
	Timeout time.Duration

	src  Source
	pub  *Publisher
	seen *Seen
	log  zerolog.Logger
	now  func() time.Time
}

// DefaultPollTimeout is the time cap of one poll unless Poller.Timeout says
// otherwise: well beyond the few minutes that reading and publishing tens of
// thousands of items takes, well short of a stuck poll blocking every later one.
const DefaultPollTimeout = 10 * time.Minute

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
	Invalid   int       `json:"invalid"`   // items the API returned that are not valid action items, or too large to publish
	Problems  []Problem `json:"-"`
}

// Published is how many events the poll published.
func (r PollResult) Published() int { return r.New + r.Changed + r.Reopened + r.Closed }

// ErrListing wraps a failure to read the open list; no closing event is inferred
// from a poll whose open list is incomplete.
var ErrListing = errors.New("cannot read the IONIX open list")

// ErrPollTimeout wraps the error of a poll stopped by its time cap
// (Poller.Timeout).
var ErrPollTimeout = errors.New("poll stopped at its time cap")

// PollOnce reads the open list, then the closed list, and publishes the events
// they call for, within the poller's time cap. It returns what it did even when
// it fails part way. An item it cannot publish — invalid, or too large for one
// message — is counted in Invalid, named in Problems and skipped; it is not
// taken for closed either.
func (p *Poller) PollOnce(ctx context.Context) (PollResult, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultPollTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrPollTimeout)
	defer cancel()
	res, err := p.poll(ctx)
	if err != nil && errors.Is(context.Cause(ctx), ErrPollTimeout) {
		err = fmt.Errorf("%w (%s): %w", ErrPollTimeout, timeout, err)
	}
	return res, err
}

func (p *Poller) poll(ctx context.Context) (PollResult, error) {
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
		if err == nil {
			err = p.opened(ctx, &res, raw, item)
		}
		return p.skipInvalid(&res, pos, item.ID, err)
	})
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrListing, err)
	}
	closedNow := make(map[string]bool)
	idx = 0
	err = p.src.Closed(ctx, func(raw json.RawMessage) error {
		pos := Position{Index: idx}
		idx++
		item, err := ionix.Decode(raw)
		if err != nil || open[item.ID] || closedNow[item.ID] {
			return nil // the open list wins; an invalid closed item names no incident
		}
		err = p.closed(ctx, &res, raw, item)
		if !errors.Is(err, ErrTooLarge) {
			closedNow[item.ID] = true // else closed below from memory, with the fields last published
		}
		return p.skipInvalid(&res, pos, item.ID, err)
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
			p.log.Warn().Err(err).Str("action_item", ionix.ShortID(s.ID)).Msg("remembered item unreadable; no closing event")
			return nil
		}
		return p.skipInvalid(&res, Position{Index: -1}, item.ID, p.closed(ctx, &res, raw, item))
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

// skipInvalid reports an item that cannot be published — not a valid action
// item, or too large for one message — and lets the poll go on; any other error
// stops the poll.
func (p *Poller) skipInvalid(res *PollResult, pos Position, id string, err error) error {
	if err == nil || !(errors.Is(err, ionix.ErrInvalid) || errors.Is(err, ErrTooLarge)) {
		return err
	}
	res.Invalid++
	res.Problems = append(res.Problems, Problem{Pos: pos, ID: id, Err: err})
	p.log.Warn().Err(err).Str("action_item", ionix.ShortID(id)).Msg("action item cannot be published; skipped")
	return nil
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
	entry := SeenItem{ID: item.ID, Fingerprint: fp, State: SeenOpen, PublishedAt: p.now().UTC(), Item: raw, Publications: pub.N + 1}
	if err := p.publish(ctx, raw, item, pub, entry); err != nil {
		return err
	}
	*count++
	return nil
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
	entry := SeenItem{ID: item.ID, Fingerprint: prev.Fingerprint, State: SeenClosed, PublishedAt: p.now().UTC(), Item: raw, Publications: n + 1}
	if err := p.publish(ctx, raw, item, Publication{Event: ionix.EventClosed, N: n}, entry); err != nil {
		return fmt.Errorf("closing event: %w", err)
	}
	res.Closed++
	return nil
}

// publish publishes one event of the item and then remembers it as entry. An
// event whose message or entry would not fit in one message is not published
// (ErrTooLarge). A poll that stopped between a publish and the write of its
// entry publishes the same publication again, which the stream drops as a
// duplicate.
func (p *Poller) publish(ctx context.Context, raw json.RawMessage, item ionix.ActionItem, pub Publication, entry SeenItem) error {
	limit := p.pub.MaxPayload(0)
	msg := p.pub.eventMessage(raw, item, pub)
	if err := fits(msg, limit); err != nil {
		return err
	}
	record, err := encodeSeen(entry, limit)
	if err != nil {
		return err
	}
	dup, err := p.pub.send(ctx, msg, item.ID)
	if err != nil {
		return err
	}
	p.log.Info().Str("action_item", ionix.ShortID(item.ID)).Str("event", string(pub.Event)).Int("publication", pub.N).
		Bool("reopened", pub.Reopened).Bool("duplicate", dup).Msg("published")
	return p.seen.put(ctx, item.ID, record)
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
	raw, err := marshalText(fields) // as large as the item, not up to six times that
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
