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
//     second; if the two posts overlapped, it requeues the newer version (a copy of
//     its message at the end of the stream), whose post then settles the incident.

// HeaderRequeuedFrom names the stream sequence a requeued copy was taken from.
const HeaderRequeuedFrom = "Ionix-Requeued-From"

// overlapMargin widens the window in which two posts of one item count as
// overlapping, for clock skew between replicas.
const overlapMargin = time.Second

// idLocks serialises work on one action item id within the process.
type idLocks struct {
	mu    sync.Mutex
	locks map[string]*idLock
}

type idLock struct {
	ch      chan struct{} // holds one token while the id is locked
	waiters int
}

// lock blocks until the id is free (or ctx ends) and returns the unlock function and
// whether it had to wait for another worker.
func (l *idLocks) lock(ctx context.Context, id string) (unlock func(), waited bool, err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*idLock)
	}
	k := l.locks[id]
	if k == nil {
		k = &idLock{ch: make(chan struct{}, 1)}
		l.locks[id] = k
	}
	k.waiters++
	l.mu.Unlock()
	select {
	case k.ch <- struct{}{}:
		waited = false
	default:
		select {
		case k.ch <- struct{}{}:
			waited = true
		case <-ctx.Done():
			l.release(id, k, false)
			return nil, false, ctx.Err()
		}
	}
	return func() { l.release(id, k, true) }, waited, nil
}

func (l *idLocks) release(id string, k *idLock, held bool) {
	if held {
		<-k.ch
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k.waiters--
	if k.waiters == 0 {
		delete(l.locks, id)
	}
}

// overlapped reports whether the post of an older version, recorded in prev, may have
// reached ServiceNow after ours, which started at started.
func overlapped(prev Ticket, started time.Time) bool {
	return !prev.SentAt.IsZero() && prev.SentAt.After(started.Add(-overlapMargin))
}

// ErrNoStream is returned by requeue when the consumer was built without its stream.
var ErrNoStream = errors.New("consumer: no stream to requeue from")

// requeue publishes a copy of the message at stream sequence seq at the end of the
// stream, so the version it carries is posted after whatever overtook it. Copies of
// one sequence are de-duplicated by their message id.
func (c *Consumer) requeue(ctx context.Context, seq uint64) error {
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
	m.Header.Set(HeaderRequeuedFrom, strconv.FormatUint(seq, 10))
	m.Data = raw.Data
	id := "requeue:" + c.d.Stream.CachedInfo().Config.Name + ":" + strconv.FormatUint(seq, 10)
	if _, err := c.d.DeadLetters.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("requeue: publish copy of sequence %d: %w", seq, err)
	}
	c.stats.requeued.Add(1)
	return nil
}

// newInstanceID returns a random id for one consumer instance.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
