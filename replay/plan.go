// Package replay re-sends a range of the action-item stream through the same
// pipeline, filters and global budget as `consume` (`ionixsnow replay`): after a
// ServiceNow instance was restored from a backup, or to fill the gaps of an outage.
//
// A replay is a durable consumer of its own, named after the range it was asked
// for, so a stopped replay resumes where it stopped when the same command runs
// again; it is deleted when the range is done.
package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Range is what the operator asked to replay: from a sequence or a time, up to a
// time or the end of the stream as it is when the replay starts.
type Range struct {
	FromSeq uint64    // first stream sequence; or
	Since   time.Time // the first message stored at or after it
	Until   time.Time // the last message stored at or before it; zero: the stream's end
	// FilterSubjects select the categories (and events); empty: the whole stream.
	FilterSubjects []string
	MissingOnly    bool
}

// ErrNothingToReplay is returned when the range holds no message.
var ErrNothingToReplay = errors.New("no message in the range")

// Plan is a range resolved to stream sequences.
type Plan struct {
	Range
	FirstSeq, LastSeq uint64
	FirstTime         time.Time // when the first message of the range was stored
	LastTime          time.Time
	// Total is how many messages of the range match the filter subjects (the
	// urgency filter applies when they are sent).
	Total uint64
	// Durable names the replay's consumers (one a pass, named after it): the same
	// range gives the same name.
	Durable string
	// Order is the range by urgency band: the passes' messages.
	Order *Order
	// StreamOrder: a replay begun by a version that knew no passes goes on in one
	// pass, in stream order.
	StreamOrder bool
	// Resumed: the replay ran before and stopped; found are the passes whose
	// consumers it left, started when it first began.
	Resumed bool
	found   []Pass
	started time.Time
}

// passesLeft are the passes still to run, the current one first.
func (p Plan) passesLeft() []Pass {
	if p.StreamOrder {
		return []Pass{InStreamOrder}
	}
	all := p.Order.passes()
	if len(p.found) == 0 {
		return all
	}
	current := slices.Max(p.found) // the later pass's consumer is made before the earlier one is deleted
	return slices.DeleteFunc(all, func(pass Pass) bool { return pass < current })
}

// Resolve finds the sequences of the range in the stream and counts its messages.
func Resolve(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, r Range) (Plan, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("stream: %w", err)
	}
	st := info.State
	if st.Msgs == 0 {
		return Plan{}, ErrNothingToReplay
	}
	p := Plan{Range: r, FirstSeq: max(r.FromSeq, st.FirstSeq), LastSeq: st.LastSeq}
	if r.FromSeq == 0 {
		if p.FirstSeq, err = firstAtOrAfter(ctx, stream, r.Since, st.FirstSeq, st.LastSeq); err != nil {
			return Plan{}, err
		}
	}
	if !r.Until.IsZero() {
		if p.LastSeq, err = lastAtOrBefore(ctx, stream, r.Until, st.FirstSeq, st.LastSeq); err != nil {
			return Plan{}, err
		}
	}
	if p.FirstSeq == 0 || p.LastSeq == 0 || p.FirstSeq > p.LastSeq {
		return Plan{}, ErrNothingToReplay
	}
	p.Durable = durableName(info.Config.Name, r)
	if err := p.resume(ctx, js, info.Config.Name); err != nil {
		return Plan{}, err
	}
	if p.Order, err = order(ctx, js, info.Config.Name, p); err != nil {
		return Plan{}, fmt.Errorf("read the range: %w", err)
	}
	if p.Total = p.Order.Count(InStreamOrder); p.Total == 0 {
		return Plan{}, ErrNothingToReplay
	}
	if m, err := nearest(ctx, stream, p.FirstSeq, st.LastSeq); err == nil {
		p.FirstTime = m.Time
	}
	if m, err := nearest(ctx, stream, p.LastSeq, st.LastSeq); err == nil {
		p.LastTime = m.Time
	}
	return p, nil
}

// resume finds the consumers a stopped run of the same replay left and takes its
// range from them: the stream may have grown since.
func (p *Plan) resume(ctx context.Context, js jetstream.JetStream, stream string) error {
	p.started = time.Now().UTC()
	for _, pass := range []Pass{InStreamOrder, PassHigh, PassMedium, PassLow} {
		cons, err := js.Consumer(ctx, stream, pass.durable(*p))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("replay consumer %s: %w", pass.durable(*p), err)
		}
		if pass == InStreamOrder {
			p.found, p.StreamOrder = []Pass{InStreamOrder}, true
		} else {
			p.found = append(p.found, pass)
		}
		md := cons.CachedInfo().Config.Metadata
		if last, err := strconv.ParseUint(md[metaLastSeq], 10, 64); err == nil {
			p.LastSeq = last
		}
		if p.started, err = time.Parse(time.RFC3339Nano, md[metaStartedAt]); err != nil {
			p.started = cons.CachedInfo().Created
		}
		p.Resumed = true
		if pass == InStreamOrder {
			return nil
		}
	}
	return nil
}

// durableName derives the replay consumer's name from what the operator asked, so
// running the same command again resumes it.
func durableName(stream string, r Range) string {
	subjects := slices.Clone(r.FilterSubjects)
	slices.Sort(subjects)
	key := strings.Join([]string{stream, strconv.FormatUint(r.FromSeq, 10), stamp(r.Since), stamp(r.Until),
		strings.Join(subjects, ","), strconv.FormatBool(r.MissingOnly)}, "|")
	sum := sha256.Sum256([]byte(key))
	return "replay_" + hex.EncodeToString(sum[:6])
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// firstAtOrAfter finds the first sequence whose message was stored at or after t
// (0 when none), by binary search over the stream's timestamps.
func firstAtOrAfter(ctx context.Context, s jetstream.Stream, t time.Time, lo, hi uint64) (uint64, error) {
	found := uint64(0)
	for lo <= hi {
		mid := lo + (hi-lo)/2
		m, err := nearest(ctx, s, mid, hi)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid - 1 // nothing stored from mid to hi
			continue
		}
		if err != nil {
			return 0, err
		}
		if !m.Time.Before(t) {
			found, hi = m.Sequence, mid-1
			if mid == 0 {
				break
			}
		} else {
			lo = m.Sequence + 1
		}
	}
	return found, nil
}

// lastAtOrBefore finds the last sequence whose message was stored at or before t
// (0 when none).
func lastAtOrBefore(ctx context.Context, s jetstream.Stream, t time.Time, lo, hi uint64) (uint64, error) {
	first, err := firstAtOrAfter(ctx, s, t.Add(time.Nanosecond), lo, hi)
	if err != nil {
		return 0, err
	}
	if first == 0 {
		return hi, nil // every message is at or before t
	}
	if first <= lo {
		return 0, nil
	}
	return first - 1, nil
}

// nearest returns the message at seq, or the next stored one up to hi (messages
// may have been deleted: dead letters are terminated, not removed, but operators
// can delete).
func nearest(ctx context.Context, s jetstream.Stream, seq, hi uint64) (*jetstream.RawStreamMsg, error) {
	for ; seq <= hi; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		return m, err
	}
	return nil, jetstream.ErrMsgNotFound
}
