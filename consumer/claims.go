package consumer

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Claims lets one replica's express lane at a time send a message ahead: a key per
// stream sequence in a KV bucket (the budget's), created before the send and
// deleted after it, its value the kind, the claimant and the time. A claim older than
// claimStale (a crashed claimant's, a delete that failed) is taken over; one of this
// consumer's own (a create whose answer was lost) is its own. Delete markers are
// purged when the lane stops.
type Claims struct {
	KV     jetstream.KeyValue
	Prefix string // "ahead.<budget key>." for a pipeline
	// owner tells this consumer's claims from others' (set by New).
	owner string
}

// claimStale: a claim older than this is no one's (a post and its ledger write
// take seconds; the consumer's AckWait is minutes).
const claimStale = 2 * time.Minute

func (c *Claims) key(seq uint64) string { return c.Prefix + strconv.FormatUint(seq, 10) }

// The kinds of claim, the first word of its value: a lane's, or a delivery's
// (which the watch of the lanes' claims ignores).
const (
	laneClaim     = "lane "
	deliveryClaim = "delivery "
)

// take claims seq as kind; false when another claimant holds it now.
func (c *Claims) take(ctx context.Context, seq uint64, kind string) (bool, error) {
	value := []byte(kind + c.owner + " " + strconv.FormatInt(time.Now().UnixMilli(), 10))
	_, err := c.KV.Create(ctx, c.key(seq), value)
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return err == nil, err
	}
	e, err := c.KV.Get(ctx, c.key(seq))
	if err != nil {
		return false, err
	}
	_, rest, _ := strings.Cut(string(e.Value()), " ") // the kind
	owner, at, _ := strings.Cut(rest, " ")
	ms, _ := strconv.ParseInt(at, 10, 64)
	switch {
	case owner == c.owner:
		return true, nil
	case time.Since(time.UnixMilli(ms)) < claimStale:
		return false, nil
	}
	_, err = c.KV.Update(ctx, c.key(seq), value, e.Revision())
	return err == nil, nil // a conflict: someone else took it over first
}

// drop gives the claim on seq up.
func (c *Claims) drop(seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.KV.Delete(ctx, c.key(seq))
}

// purge removes the delete markers the claims left.
func (c *Claims) purge() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.KV.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1))
}

// claimOwnTurn takes, while the express lane may send ahead, the claim on a
// delivered message before its decision, so that a lane (of any replica) and the
// delivery never post it both: held reports that a lane holds it now; release, when
// set, gives the delivery's claim up. Copies are never sent ahead.
func (c *Consumer) claimOwnTurn(ctx context.Context, d *delivery) (held bool, release func()) {
	if d.express != nil || c.d.Claims == nil || !c.x.engaged() || d.meta == nil || !c.x.sendsAhead(d) {
		return false, nil
	}
	seq := d.meta.Sequence.Stream
	taken, err := c.d.Claims.take(ctx, seq, deliveryClaim)
	switch {
	case err != nil:
		return false, nil // decided by the ledger alone, as without claims
	case !taken:
		return true, nil
	}
	return false, func() { c.d.Claims.drop(seq) }
}
