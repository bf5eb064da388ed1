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

// take claims seq as kind; false when another claimant holds it now, held then
// being the kind of its claim ("" when unknown).
func (c *Claims) take(ctx context.Context, seq uint64, kind string) (taken bool, held string, err error) {
	value := []byte(kind + c.owner + " " + strconv.FormatInt(time.Now().UnixMilli(), 10))
	_, err = c.KV.Create(ctx, c.key(seq), value)
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return err == nil, "", err
	}
	e, err := c.KV.Get(ctx, c.key(seq))
	if err != nil {
		return false, "", err
	}
	held, owner, fresh := c.parse(e.Value())
	switch {
	case owner == c.owner:
		return true, "", nil
	case fresh:
		return false, held, nil
	}
	_, err = c.KV.Update(ctx, c.key(seq), value, e.Revision())
	return err == nil, "", nil // a conflict: someone else took it over first
}

// laneHolds reports whether another consumer's express lane holds the claim on seq
// now, taking none.
func (c *Claims) laneHolds(ctx context.Context, seq uint64) (bool, error) {
	e, err := c.KV.Get(ctx, c.key(seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	kind, owner, fresh := c.parse(e.Value())
	return kind == laneClaim && owner != c.owner && fresh, nil
}

// parse reads a claim's value: its kind (with its space), its owner, and whether it
// is younger than claimStale.
func (c *Claims) parse(value []byte) (kind, owner string, fresh bool) {
	kind, rest, _ := strings.Cut(string(value), " ")
	owner, at, _ := strings.Cut(rest, " ")
	ms, _ := strconv.ParseInt(at, 10, 64)
	return kind + " ", owner, time.Since(time.UnixMilli(ms)) < claimStale
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

// claimOwnTurn keeps a delivered message that an express lane (of any replica) may
// send ahead from being posted by both: held reports that a lane holds it now;
// careful that the decision must read the ledger (a lane may have posted it
// already); release, when set, gives the delivery's claim up. Copies are never
// sent ahead.
//
// While a lane may send ahead (engaged), the delivery takes the claim itself. With
// this replica's lane off, another replica's may be on all the same: the watch of
// the claims tells that late (or not at all for claims made before it started), so
// the delivery looks at the claim, taking none, and reads the ledger. That is enough
// because a lane sends only what the durable consumer had not delivered once its
// claim was in place (express.send): a lane that claims after this look finds the
// message delivered, and one that claimed before it either still holds the claim or
// has recorded its post in the ledger.
func (c *Consumer) claimOwnTurn(ctx context.Context, d *delivery) (held, careful bool, release func()) {
	if d.express != nil || c.d.Claims == nil || c.x == nil || d.meta == nil || !c.x.sendsAhead(d) {
		return false, false, nil
	}
	seq := d.meta.Sequence.Stream
	if !c.x.engaged() && (d.grant == nil || !d.grant.Tight) {
		// The cap does not bind: no lane of any replica has engaged for this send.
		return false, false, nil
	}
	if !c.x.engaged() {
		held, err := c.d.Claims.laneHolds(ctx, seq)
		return held && err == nil, true, nil // on an error, decided by the ledger alone
	}
	taken, _, err := c.d.Claims.take(ctx, seq, deliveryClaim)
	switch {
	case err != nil:
		return false, true, nil // decided by the ledger alone, as without claims
	case !taken:
		return true, true, nil
	}
	return false, true, func() { c.d.Claims.drop(seq) }
}
