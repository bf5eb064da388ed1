package backlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
)

// Follow adds to ix every message of the stream on subjects from sequence from on,
// with the band of its item's urgency, until ctx ends (then it returns nil). It reads
// through an ordered consumer: nothing it reads is held, acknowledged or delivered
// again, so it changes nothing for the durable consumer. A message that does not
// decode is not indexed (the durable consumer dead-letters it in its turn).
func Follow(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from uint64, ix *Index) error {
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
		ix.Add(meta.Sequence.Stream, BandOf(item.Urgency))
	}
}
