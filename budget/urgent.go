package budget

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// An urgent acquire (AcquireUrgentGrant) that has to wait says so in the bucket: key
// urgent.<key>, written again each half poll while it waits and deleted once no
// urgent acquire of the process waits (only if no other process wrote it since). An
// ordinary acquire of any replica that finds the window nearly spent reads the mark
// and holds back while it is fresh, so that the slot the window frees next is the
// urgent one's: a High item goes first whichever replica has it (SPEC §10), even
// where no slots are reserved for High items. Fresh is judged by the reader's own
// clock — the mark changed within the last three polls — so clock skew between
// replicas neither hides a mark nor makes a left-behind one last. While the window
// has room no acquire reads it: without a backlog it costs nothing.

// urgentPrefix starts the key of a budget's urgent mark.
const urgentPrefix = "urgent."

// urgentMark is a KV's side of the marks: its own and the last one it read.
type urgentMark struct {
	mu       sync.Mutex
	waiting  int       // this process's urgent acquires that wait
	markedAt time.Time // when this process last wrote the mark
	rev      uint64    // the revision of that write
	seenRev  uint64    // the revision of the mark last read
	seenAt   time.Time // when the mark read was seen to change
}

func (b *KV) urgentKey() string { return urgentPrefix + b.key }

// markUrgent marks that an urgent acquire waits; first reports whether this is its
// first hold (it then counts as waiting until unmarkUrgent). Written at most once a
// half poll per process.
func (b *KV) markUrgent(ctx context.Context, first bool) {
	m := &b.urgent
	m.mu.Lock()
	if first {
		m.waiting++
	}
	if time.Since(m.markedAt) < b.poll/2 {
		m.mu.Unlock()
		return
	}
	m.markedAt = time.Now()
	m.mu.Unlock()
	rev, err := b.kv.Put(ctx, b.urgentKey(), []byte(strconv.FormatInt(time.Now().UnixMilli(), 10)))
	if err != nil {
		b.log.Debug().Err(err).Str("key", b.urgentKey()).Msg("could not mark an urgent grant waiting")
		return
	}
	m.mu.Lock()
	m.rev = rev
	m.mu.Unlock()
}

// unmarkUrgent ends a waiting urgent acquire; the last of the process deletes the
// mark, unless another process wrote it since.
func (b *KV) unmarkUrgent(ctx context.Context) {
	m := &b.urgent
	m.mu.Lock()
	m.waiting--
	rev := m.rev
	last := m.waiting == 0
	if last {
		m.markedAt, m.rev = time.Time{}, 0
	}
	m.mu.Unlock()
	if !last || rev == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	_ = b.kv.Delete(dctx, b.urgentKey(), jetstream.LastRevision(rev))
}

// urgentWaits reports whether an urgent acquire of any replica waits now: the mark
// is there and changed within the last three polls, by this process's clock.
func (b *KV) urgentWaits(ctx context.Context) bool {
	e, err := b.kv.Get(ctx, b.urgentKey())
	if err != nil {
		return false
	}
	m := &b.urgent
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Revision() != m.seenRev {
		m.seenRev, m.seenAt = e.Revision(), time.Now()
	}
	return time.Since(m.seenAt) < 3*b.poll
}

// hold sleeps while the cap holds an acquire back, up to a poll (false when ctx
// ended), and tells OnHold's function.
func (b *KV) hold(ctx context.Context, wait time.Duration) bool {
	if f := b.onHold.Load(); f != nil {
		(*f)()
	}
	return sleepCtx(ctx, min(max(wait, time.Millisecond), b.poll))
}
