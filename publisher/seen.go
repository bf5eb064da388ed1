package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
)

// States of an action item in the poller's memory.
const (
	SeenOpen   = "open"
	SeenClosed = "closed"
)

// SeenItem is what the poller remembers of an action item it published: the
// fingerprint of the published version, whether its last event was opened or
// closed, and the item itself, from which its closing event is built when it
// leaves the open list.
type SeenItem struct {
	ID          string          `json:"id"`
	Fingerprint string          `json:"fingerprint"`
	State       string          `json:"state"`
	PublishedAt time.Time       `json:"published_at"`
	Item        json.RawMessage `json:"item"`
	// Publications counts the events published for the item; the next one is
	// published as the Publications-th (see ionix.MsgIDNth). Zero in entries
	// written before it was counted.
	Publications int `json:"publications,omitempty"`
}

// next is the number of the item's next publication: 0 for an item never published,
// else the count of its publications (at least 1: an entry from before they were
// counted has had one).
func next(prev SeenItem, found bool) int {
	if !found {
		return 0
	}
	return max(prev.Publications, 1)
}

// Seen is the poller's state in the KV bucket ionix_seen: action item id -> SeenItem.
// It is what makes a restarted poller publish nothing twice.
type Seen struct {
	kv     jetstream.KeyValue
	prefix string
}

// NewSeen returns the poller state over the bucket.
func NewSeen(kv jetstream.KeyValue) *Seen { return &Seen{kv: kv} }

// NewSeenForTenant returns tenant's poller state (SPEC §9): its keys are prefix (such
// as "acme.") followed by the item's key token, which never holds a dot. An empty
// prefix is NewSeen's (the single-tenant form's keys are the ones without a dot).
func NewSeenForTenant(kv jetstream.KeyValue, prefix string) *Seen {
	return &Seen{kv: kv, prefix: prefix}
}

// key is the item's key in this state.
func (s *Seen) key(id string) string { return s.prefix + ionix.KeyToken(id) }

// ours reports whether a key of the bucket is this state's.
func (s *Seen) ours(key string) bool {
	if s.prefix == "" {
		return !strings.Contains(key, ".")
	}
	return strings.HasPrefix(key, s.prefix) && !strings.Contains(key[len(s.prefix):], ".")
}

// Get returns what the poller remembers of the item; ok is false when nothing.
func (s *Seen) Get(ctx context.Context, id string) (it SeenItem, ok bool, err error) {
	e, err := s.kv.Get(ctx, s.key(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return SeenItem{}, false, nil
	}
	if err != nil {
		return SeenItem{}, false, fmt.Errorf("seen get %s: %w", ionix.QuoteID(id), err)
	}
	if err := json.Unmarshal(e.Value(), &it); err != nil {
		// Unreadable: treat as unseen, so the item is published again (the
		// stream's de-duplication absorbs a repeat within its window).
		return SeenItem{}, false, nil
	}
	return it, true, nil
}

// encodeSeen is the value recorded for it, which must fit within limit bytes
// (the server's max_payload: a KV value is one message).
func encodeSeen(it SeenItem, limit int64) ([]byte, error) {
	b, err := marshalText(it)
	if err != nil {
		return nil, fmt.Errorf("seen entry of %s: %w", ionix.QuoteID(it.ID), err)
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{What: "poller record (a KV value)", Size: int64(len(b)), Limit: limit}
	}
	return b, nil
}

// put records the value of the item with the given id (see encodeSeen).
func (s *Seen) put(ctx context.Context, id string, value []byte) error {
	if _, err := s.kv.Put(ctx, s.key(id), value); err != nil {
		return fmt.Errorf("seen put %s: %w", ionix.QuoteID(id), err)
	}
	return nil
}

// Each calls fn for every remembered item.
func (s *Seen) Each(ctx context.Context, fn func(SeenItem) error) error {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("seen keys: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		if s.ours(k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("seen get %s: %w", k, err)
		}
		var it SeenItem
		if json.Unmarshal(e.Value(), &it) != nil || it.ID == "" {
			continue
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

// marshalText is json.Marshal without HTML escaping: an item full of markup would
// grow up to six times ("<" as "\u003c").
func marshalText(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
