package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/topology"
)

// Two versions of one action item (a changed item published again, or its closing
// event) must reach ServiceNow in stream order, or the incident keeps the older
// text. Three pieces keep that order:
//
//   - within a process, posts of one item are serialised (idLocks); a post that had
//     to wait looks in the ledger first, like a redelivery;
//   - the ledger records the stream sequence of what was posted, so a message older
//     than the ledger's entry (a redelivery after a newer version went through) is
//     acknowledged without a post (superseded);
//   - across replicas, two versions may be posted at the same moment and arrive in
//     either order. The ledger's compare-and-swap tells the replica that finishes
//     second; if the two posts overlapped and carried different content, it
//     requeues the newer version (a copy of its message at the end of the stream),
//     whose post then settles the incident. A copy is dated by its original's
//     sequence and posted whatever the ledger says (the ledger already records the
//     original), with the same record — a reopening's copy reopens again.

// overlapMargin widens the window in which two posts of one item count as
// overlapping, for clock skew between replicas.
const overlapMargin = time.Second

// idLocks serialises the posts of one action item within the process, in the order
// the messages were fetched (stream order): the fetch loop reserves a turn for each
// message before its worker starts.
type idLocks struct {
	mu     sync.Mutex
	queues map[string][]*turn
}

// turn is one message's place in the queue of its item. A nil turn (a message
// without a readable id) never waits.
type turn struct {
	l       *idLocks
	key     string
	granted chan struct{}
	waited  bool // another message of the item was ahead when it was reserved
}

// reserve queues a turn for the item with this id.
func (l *idLocks) reserve(key string) *turn {
	if key == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.queues == nil {
		l.queues = make(map[string][]*turn)
	}
	t := &turn{l: l, key: key, granted: make(chan struct{})}
	q := l.queues[key]
	if len(q) == 0 {
		close(t.granted)
	} else {
		t.waited = true
	}
	l.queues[key] = append(q, t)
	return t
}

// wait blocks until the turn comes and reports whether another message of the item
// went first. While it waits, keepAlive runs every interval (the message is marked in
// progress, so that a long post ahead of it does not get it redelivered).
func (t *turn) wait(ctx context.Context, keepAlive func(), every time.Duration) (waited bool, err error) {
	if t == nil {
		return false, nil
	}
	var tick <-chan time.Time
	if t.waited && every > 0 {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-t.granted:
			return t.waited, nil
		case <-tick:
			keepAlive()
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// done ends the turn (or gives up its place) and lets the next message go.
func (t *turn) done() {
	if t == nil {
		return
	}
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queues[t.key]
	for i, u := range q {
		if u != t {
			continue
		}
		q = append(q[:i], q[i+1:]...)
		if i == 0 && len(q) > 0 {
			close(q[0].granted)
		}
		break
	}
	if len(q) == 0 {
		delete(l.queues, t.key)
	} else {
		l.queues[t.key] = q
	}
}

// copyReopens reports whether the requeued copy of newest, requeued because late may
// have landed after it, must reopen the incident: newest is an opened event (not a
// resolving) and either reopened the incident itself or follows a closing that may
// have resolved it again.
func copyReopens(late, newest ledger.Ticket) bool {
	return newest.Status != ledger.StatusResolved && (newest.Status == ledger.StatusReopened || late.Status == ledger.StatusResolved)
}

// harmlessAfter reports whether the post recorded in late, landing in ServiceNow after
// the post recorded in newest, leaves the incident as newest made it: the same
// version of the item, and no state or the same state (a plain post sets no state, so
// it cannot undo a resolving or a reopening; a resolving landing after a reopening
// can).
//
// A closing recorded without an incident (no post) is harmless as late; as newest,
// nothing is: late made the incident that closing never reached.
func harmlessAfter(late, newest ledger.Ticket) bool {
	switch {
	case !late.Ticketed():
		return true
	case !newest.Ticketed():
		return false
	}
	return late.Fingerprint == newest.Fingerprint && (late.State() == "" || late.State() == newest.State())
}

// ledgerView is what the ledger held for an item when its post was decided.
type ledgerView struct {
	read  bool // the ledger was read (first deliveries may skip it)
	found bool
	t     ledger.Ticket
}

// changedTo reports whether prev, the entry our ledger write replaced, was written by
// another post after ours was decided — which then may have reached ServiceNow after
// ours. Without a read, a post that ended less than overlapMargin before ours began
// counts.
func (v ledgerView) changedTo(prev ledger.Ticket, started time.Time) bool {
	if !v.read {
		return overlapped(prev, started)
	}
	return !v.found || prev.StreamSeq != v.t.StreamSeq || prev.Stream != v.t.Stream || prev.PostedBy != v.t.PostedBy ||
		prev.Status != v.t.Status || !prev.SentAt.Equal(v.t.SentAt)
}

// overlapped reports whether the post of an older version, recorded in prev, may have
// reached ServiceNow after ours, which started at started.
func overlapped(prev ledger.Ticket, started time.Time) bool {
	return !prev.SentAt.IsZero() && prev.SentAt.After(started.Add(-overlapMargin))
}

// ErrNoStream is returned by requeue when the consumer was built without its stream.
var ErrNoStream = errors.New("consumer: no stream to requeue from")

// requeue publishes a copy of the message at stream sequence seq at the end of the
// stream, so the version it carries is posted after whatever overtook it. by is the
// stream sequence of the message whose handling found the overlap: copies for one
// finding are de-duplicated by their message id, while a later overlap involving the
// same version gets a copy of its own.
func (c *Consumer) requeue(ctx context.Context, seq, by uint64, reopen bool) error {
	if c.d.Stream == nil {
		return ErrNoStream
	}
	raw, err := c.d.Stream.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("requeue: read sequence %d: %w", seq, err)
	}
	m := nats.NewMsg(raw.Subject)
	for k, vs := range raw.Header {
		if k == topology.HeaderMsgID {
			continue
		}
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	m.Header.Set(topology.HeaderRequeuedFrom, strconv.FormatUint(seq, 10))
	m.Header.Del(topology.HeaderRequeuedReopen)
	if reopen {
		m.Header.Set(topology.HeaderRequeuedReopen, "true")
	}
	m.Data = raw.Data
	id := "requeue:" + c.d.Stream.CachedInfo().Config.Name + ":" + strconv.FormatUint(seq, 10) + ":" + strconv.FormatUint(by, 10)
	if _, err := c.d.JetStream.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("requeue: publish copy of sequence %d: %w", seq, err)
	}
	c.stats.requeued.Add(1)
	return nil
}

// streamInstance names the stream instance from the stream's cached info ("" when
// unknown).
func streamInstance(s jetstream.Stream) string {
	if s == nil {
		return ""
	}
	return instanceOf(s.CachedInfo())
}

// instanceOf names a stream instance: its creation time ("" when unknown).
func instanceOf(info *jetstream.StreamInfo) string {
	if info == nil || info.Created.IsZero() {
		return ""
	}
	return info.Created.UTC().Format(time.RFC3339Nano)
}

// newInstanceID returns a random id for one consumer instance.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
