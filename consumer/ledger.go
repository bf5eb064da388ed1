package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
)

// Ticket statuses recorded in the ledger besides ServiceNow's import statuses
// ("inserted", "updated").
const StatusResolved = "resolved"

// Ticket is what the ledger remembers of an action item's incident.
type Ticket struct {
	Fingerprint string    `json:"fingerprint"`
	SysID       string    `json:"sys_id"`
	Number      string    `json:"number"`
	Status      string    `json:"status"`
	SentAt      time.Time `json:"sent_at"`
}

// Ledger maps action item ids to their tickets in a key-value bucket.
type Ledger struct {
	kv jetstream.KeyValue
}

// NewLedger returns a ledger over the ticket bucket.
func NewLedger(kv jetstream.KeyValue) *Ledger { return &Ledger{kv: kv} }

// LedgerKey encodes a free-text action item id as a key-value key.
func LedgerKey(id string) string { return ionix.KeyToken(id) }

// Get returns the ticket of the action item; ok is false when there is none.
func (l *Ledger) Get(ctx context.Context, id string) (t Ticket, ok bool, err error) {
	e, err := l.kv.Get(ctx, LedgerKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Ticket{}, false, nil
	}
	if err != nil {
		return Ticket{}, false, fmt.Errorf("ledger get %q: %w", id, err)
	}
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return Ticket{}, false, fmt.Errorf("ledger entry of %q: %w", id, err)
	}
	return t, true, nil
}

// Put records the ticket of the action item.
func (l *Ledger) Put(ctx context.Context, id string, t Ticket) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("ledger entry of %q: %w", id, err)
	}
	if _, err := l.kv.Put(ctx, LedgerKey(id), b); err != nil {
		return fmt.Errorf("ledger put %q: %w", id, err)
	}
	return nil
}
