package budget

import (
	"context"
	"strconv"
	"time"
)

// An urgent acquire (AcquireUrgentGrant) that has to wait says so in the bucket: key
// urgent.<key>, its value the Unix ms until which the mark holds (three polls; it is
// written again each half poll while the acquire waits, and deleted once it is
// granted). An ordinary acquire of any replica that reads a fresh mark holds back,
// so that the slot the window frees next is the urgent one's: a High item goes
// first whichever replica has it (SPEC §10), even where no slots are reserved for
// High items. Ordinary acquires read the mark only while this budget held acquires
// back lately (a backlog): otherwise it costs nothing.

// urgentPrefix starts the key of a budget's urgent mark.
const urgentPrefix = "urgent."

func (b *KV) urgentKey() string { return urgentPrefix + b.key }

// markUrgent marks that an urgent acquire waits at now; at most once a half poll.
func (b *KV) markUrgent(ctx context.Context, now int64) {
	if now-b.markedAt.Load() < b.poll.Milliseconds()/2 {
		return
	}
	b.markedAt.Store(now)
	until := now + 3*b.poll.Milliseconds()
	if _, err := b.kv.Put(ctx, b.urgentKey(), []byte(strconv.FormatInt(until, 10))); err != nil {
		b.log.Debug().Err(err).Str("key", b.urgentKey()).Msg("could not mark an urgent grant waiting")
	}
}

// unmarkUrgent removes this process's mark, if it made one.
func (b *KV) unmarkUrgent(ctx context.Context) {
	if b.markedAt.Swap(0) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	_ = b.kv.Delete(dctx, b.urgentKey())
}

// urgentWaits is, for an ordinary acquire at now, until when an urgent one waits (0:
// none, or this budget held nothing back in the last window).
func (b *KV) urgentWaits(ctx context.Context, now int64) int64 {
	if now-b.heldAt.Load() > b.window.Milliseconds() {
		return 0
	}
	e, err := b.kv.Get(ctx, b.urgentKey())
	if err != nil {
		return 0
	}
	until, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil || until <= now {
		return 0
	}
	return until
}

// holdFor sleeps while the cap holds an acquire back, up to a poll (false when ctx
// ended), and tells OnHold's function.
func (b *KV) holdFor(ctx context.Context, now int64, wait time.Duration) bool {
	b.heldAt.Store(now)
	if f := b.onHold.Load(); f != nil {
		(*f)()
	}
	return sleepCtx(ctx, min(max(wait, time.Millisecond), b.poll))
}
