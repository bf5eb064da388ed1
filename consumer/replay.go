package consumer

import (
	"context"
	"time"
)

// Replay makes a consumer re-send a range of the stream (`ionixsnow replay`): every
// message in the range is posted again, whatever the ledger says, except
//   - a message older than the version the ledger holds, with other content (the
//     incident should keep the newer version);
//   - a message this replay already re-sent (a redelivery within the replay);
//   - with Present set (--missing-only), an item whose incident still exists.
//
// Messages after LastSeq, and with InPass those of another band's pass, are not
// this consumer's to re-send: acknowledged and left alone. A
// replay is one of the modes decide takes (modeOf); nothing else reads it, but the
// gathering of Present's answer.
type Replay struct {
	// Since is when the replay began; a ledger entry written after it is this
	// replay's own re-send. A resumed replay passes the time it first began.
	Since time.Time
	// LastSeq is the last stream sequence of the range; 0 means no end.
	LastSeq uint64
	// InPass, when set, reports whether the message at a stream sequence is re-sent
	// in this pass (a replay goes by urgency band, one pass per band); the others
	// are acknowledged and left alone, like those after LastSeq.
	InPass func(seq uint64) bool
	// Present, when set, reports whether the item's incident still exists in
	// ServiceNow (a Table API read); only items whose incident is gone are re-sent.
	Present func(ctx context.Context, id string) (bool, error)
}
