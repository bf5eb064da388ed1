package backlog

import (
	"context"
	"errors"
	"fmt"
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
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer func() {
		if ci := cons.CachedInfo(); ci != nil {
			removeConsumer(js, stream, ci.Name)
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		item, err := ionix.Decode(msg.Data())
		if err != nil {
			continue
		}
		closing := msg.Headers().Get(topology.HeaderEvent) == string(ionix.EventClosed)
		if keep != nil && !keep(msg.Subject(), item, closing) {
			continue
		}
		ix.Add(meta.Sequence.Stream, BandOf(item.Urgency))
	}
}

// Scan indexes the messages on subjects from sequence from to the last one there is
// now, reading at most limit of them; complete is false when it stopped at limit.
func Scan(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from uint64, limit int, ix *Index) (complete bool, err error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return false, fmt.Errorf("scan %s: %w", stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("scan %s: %w", stream, err)
	}
	// The ordered consumer makes a server-side consumer for each fetch: remove
	// the last one.
	defer func() {
		if ci := cons.CachedInfo(); ci != nil {
			removeConsumer(js, stream, ci.Name)
		}
	}()
	left := info.NumPending
	for read := 0; left > 0; {
		if read >= limit {
			return false, nil
		}
		batch, err := cons.Fetch(min(int(left), limit-read, 1000), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return false, fmt.Errorf("scan %s: %w", stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			read++
			meta, err := msg.Metadata()
			if err != nil {
				continue
			}
			left = meta.NumPending
			if item, err := ionix.Decode(msg.Data()); err == nil {
				ix.Add(meta.Sequence.Stream, BandOf(item.Urgency))
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return false, fmt.Errorf("scan %s: %w", stream, err)
		}
		if got == 0 {
			return false, fmt.Errorf("scan %s: no message in 2s with %d left", stream, left)
		}
	}
	return true, nil
}

// removeConsumer deletes an ordered consumer at once, so that a reader leaves no
// trace on the stream (the server would remove it after its inactivity threshold).
func removeConsumer(js jetstream.JetStream, stream, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = js.DeleteConsumer(ctx, stream, name)
}
