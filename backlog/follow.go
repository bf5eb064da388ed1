package backlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// Keep tells which messages to index: the message's subject, its item, and whether
// it is the item's closing event. Nil keeps every one.
type Keep func(subject string, item ionix.ActionItem, closing bool) bool

// Follow adds to ix every message of the stream on subjects from sequence from on
// that keep keeps, with the band of its item's urgency, until ctx ends (then it
// returns nil). It reads through an ordered consumer: nothing it reads is held,
// acknowledged or delivered again, so it changes nothing for the durable consumer. A
// message that does not decode is not indexed (the durable consumer dead-letters it
// in its turn).
func Follow(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from uint64, ix *Index, keep Keep) error {
	cons, remove, err := reader(ctx, js, stream, subjects, from)
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	defer remove()
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		index(ix, msg, keep)
	}
}

// Scan indexes the messages on subjects from sequence from to the last one there is
// now, reading at most limit of them; complete is false when it stopped at limit.
func Scan(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from uint64, limit int, ix *Index) (complete bool, err error) {
	complete, err = visit(ctx, js, stream, subjects, from, limit, func(msg jetstream.Msg) bool {
		index(ix, msg, nil)
		return true
	})
	if err != nil {
		return false, fmt.Errorf("scan %s: %w", stream, err)
	}
	return complete, nil
}

// Each hands fn every message on subjects from sequence from through to, in stream
// order: its sequence, its item and whether the item decoded (a message that does
// not has no band; fn decides where it goes).
func Each(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from, to uint64, fn func(seq uint64, item ionix.ActionItem, decoded bool)) error {
	_, err := visit(ctx, js, stream, subjects, from, math.MaxInt, func(msg jetstream.Msg) bool {
		meta, err := msg.Metadata()
		if err != nil {
			return true
		}
		if seq := meta.Sequence.Stream; seq <= to {
			item, err := ionix.Decode(msg.Data())
			fn(seq, item, err == nil)
		}
		return meta.Sequence.Stream < to
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	return nil
}

// visit hands fn the messages on subjects from sequence from to the last one there is
// now, until fn returns false or limit were read; complete is false when it stopped
// at limit.
func visit(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from uint64, limit int, fn func(jetstream.Msg) bool) (complete bool, err error) {
	cons, remove, err := reader(ctx, js, stream, subjects, from)
	if err != nil {
		return false, err
	}
	defer remove()
	info, err := cons.Info(ctx)
	if err != nil {
		return false, err
	}
	left := info.NumPending
	for read := 0; left > 0; {
		if read >= limit {
			return false, nil
		}
		batch, err := cons.Fetch(int(min(left, uint64(limit-read), 1000)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return false, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			read++
			if meta, err := msg.Metadata(); err == nil {
				left = meta.NumPending
			}
			if !fn(msg) {
				return true, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return false, err
		}
		if got == 0 {
			return false, fmt.Errorf("no message in 2s with %d left", left)
		}
	}
	return true, nil
}

// reader is an ordered consumer on the stream's subjects from sequence from on, and
// what removes it from the server once read. An ordered consumer makes a
// server-side consumer again for each fetch and after a gap: remove takes the last.
func reader(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from uint64) (cons jetstream.Consumer, remove func(), err error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	if cons, err = js.OrderedConsumer(ctx, stream, cfg); err != nil {
		return nil, nil, err
	}
	return cons, func() {
		if ci := cons.CachedInfo(); ci != nil {
			removeConsumer(js, stream, ci.Name)
		}
	}, nil
}

// index adds msg to ix with its item's band, if keep (nil: all) keeps it; a message
// without metadata or a valid item is not indexed.
func index(ix *Index, msg jetstream.Msg, keep Keep) {
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	item, err := ionix.Decode(msg.Data())
	if err != nil {
		return
	}
	closing := msg.Headers().Get(topology.HeaderEvent) == string(ionix.EventClosed)
	if keep != nil && !keep(msg.Subject(), item, closing) {
		return
	}
	ix.Add(meta.Sequence.Stream, BandOf(item.Urgency))
}

// removeConsumer deletes an ordered consumer at once, so that a reader leaves no
// trace on the stream (the server would remove it after its inactivity threshold).
func removeConsumer(js jetstream.JetStream, stream, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = js.DeleteConsumer(ctx, stream, name)
}
