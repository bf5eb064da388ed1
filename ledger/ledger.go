// Package ledger is the ticket ledger: what ionixsnow remembers of each action item
// it posted (the incident, and the event posted last), one KV key per item, written
// with compare-and-swap so that concurrent replicas never replace a newer entry.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

// Ticket statuses recorded in the ledger besides ServiceNow's import statuses
// ("inserted", "updated").
const (
	StatusResolved = "resolved" // a closing event resolved the incident
	StatusReopened = "reopened" // an opened event after that set it back to In Progress
)

// Ticket is what the ledger remembers of an action item's incident.
type Ticket struct {
	Fingerprint string    `json:"fingerprint"`
	SysID       string    `json:"sys_id"`
	Number      string    `json:"number"`
	Status      string    `json:"status"`
	SentAt      time.Time `json:"sent_at"`
	// StreamSeq is the stream sequence of the event that was posted (for a
	// re-driven or requeued copy, its original's): a message older than it
	// carries an older version of the item. Zero in entries written before it
	// was recorded.
	StreamSeq uint64 `json:"stream_seq,omitempty"`
	// Stream names the stream instance StreamSeq counts in (its creation time): a
	// stream deleted and created again counts from 1, and its events are not older
	// than the entries of the one before. Empty in entries written before it was
	// recorded, and for a consumer without its stream.
	Stream string `json:"stream,omitempty"`
	// PostedBy is the consumer instance that posted it (random per process): posts
	// of one item by one instance never overlap.
	PostedBy string `json:"posted_by,omitempty"`
}

// State is the incident state the ticket's post set: Resolved, In Progress for a
// reopening, "" for a plain post (which sets none).
func (t Ticket) State() string {
	switch t.Status {
	case StatusResolved:
		return mapping.StateResolved
	case StatusReopened:
		return mapping.StateInProgress
	}
	return ""
}

// Ticketed reports whether the entry names an incident. The entry of a closing
// recorded before the item had one (no post made) does not.
func (t Ticket) Ticketed() bool { return t.SysID != "" || t.Number != "" }

// NewerThan reports whether the ticket records a later event than the one at stream
// sequence seq of stream instance stream. An entry of another stream instance is
// never newer.
func (t Ticket) NewerThan(seq uint64, stream string) bool {
	return t.SameStream(stream) && t.StreamSeq > seq
}

// SameStream reports whether the ticket's sequence counts in the stream instance
// stream (true when either is unknown).
func (t Ticket) SameStream(stream string) bool {
	return t.Stream == "" || stream == "" || t.Stream == stream
}

// Tickets maps action item ids to their tickets in a key-value bucket.
type Tickets struct {
	kv     jetstream.KeyValue
	prefix string
}

// New returns the ledger over the ticket bucket.
func New(kv jetstream.KeyValue) *Tickets { return &Tickets{kv: kv} }

// NewForTenant returns the ledger of one tenant (SPEC §9): its keys are prefix (such
// as "acme.") followed by Key(id). An empty prefix is New's ledger (the single-tenant
// form).
func NewForTenant(kv jetstream.KeyValue, prefix string) *Tickets {
	return &Tickets{kv: kv, prefix: prefix}
}

// key is the item's key in this ledger.
func (l *Tickets) key(id string) string { return l.prefix + Key(id) }

// Key encodes a free-text action item id as a key-value key.
func Key(id string) string { return ionix.KeyToken(id) }

// Get returns the ticket of the action item; ok is false when there is none.
func (l *Tickets) Get(ctx context.Context, id string) (t Ticket, ok bool, err error) {
	e, err := l.kv.Get(ctx, l.key(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Ticket{}, false, nil
	}
	if err != nil {
		return Ticket{}, false, fmt.Errorf("ledger get %s: %w", ionix.QuoteID(id), err)
	}
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return Ticket{}, false, fmt.Errorf("ledger entry of %s: %w", ionix.QuoteID(id), err)
	}
	return t, true, nil
}

// Put records the ticket of the action item, whatever the ledger held.
func (l *Tickets) Put(ctx context.Context, id string, t Ticket) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("ledger entry of %s: %w", ionix.QuoteID(id), err)
	}
	if _, err := l.kv.Put(ctx, l.key(id), b); err != nil {
		return fmt.Errorf("ledger put %s: %w", ionix.QuoteID(id), err)
	}
	return nil
}

// maxRecordAttempts bounds Record's compare-and-swap loop.
const maxRecordAttempts = 16

// Record writes the ticket of the action item unless the ledger already holds a
// later event of it (a higher StreamSeq, written by a replica that posted a newer
// version meanwhile). It returns what the ledger held before (found false: nothing)
// and whether t was written. The write is a compare-and-swap: concurrent recorders
// of one item never overwrite a newer entry with an older one. A first ticket costs
// one request; replacing one costs four (nats.go's Create reads the key after the
// failed write, then Get and Update).
func (l *Tickets) Record(ctx context.Context, id string, t Ticket) (prev Ticket, found, written bool, err error) {
	return l.RecordUnless(ctx, id, t, nil)
}

// RecordUnless is Record that also leaves alone an entry keep reports true for.
func (l *Tickets) RecordUnless(ctx context.Context, id string, t Ticket, keep func(Ticket) bool) (prev Ticket, found, written bool, err error) {
	b, err := json.Marshal(t)
	if err != nil {
		return Ticket{}, false, false, fmt.Errorf("ledger entry of %s: %w", ionix.QuoteID(id), err)
	}
	key := l.key(id)
	for range maxRecordAttempts {
		_, err := l.kv.Create(ctx, key, b)
		if err == nil {
			return Ticket{}, false, true, nil
		}
		if !isConflict(err) {
			return Ticket{}, false, false, fmt.Errorf("ledger create %s: %w", ionix.QuoteID(id), err)
		}
		e, err := l.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile: create again
		}
		if err != nil {
			return Ticket{}, false, false, fmt.Errorf("ledger get %s: %w", ionix.QuoteID(id), err)
		}
		prev = Ticket{}
		if err := json.Unmarshal(e.Value(), &prev); err != nil {
			// An unreadable entry is replaced: the ledger only saves posts.
			prev = Ticket{}
		}
		if prev.NewerThan(t.StreamSeq, t.Stream) || keep != nil && keep(prev) {
			return prev, true, false, nil
		}
		_, err = l.kv.Update(ctx, key, b, e.Revision())
		if err == nil {
			return prev, true, true, nil
		}
		if !isConflict(err) {
			return prev, true, false, fmt.Errorf("ledger update %s: %w", ionix.QuoteID(id), err)
		}
	}
	return Ticket{}, false, false, fmt.Errorf("ledger record %s: %d concurrent writers in a row", ionix.QuoteID(id), maxRecordAttempts)
}

// isConflict reports a lost compare-and-swap: Update's revision mismatch, or Create
// finding the key there.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}
