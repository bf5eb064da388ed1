package bench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// recorder notes when each message of the run is settled: acknowledged (double
// ack confirmed) or terminated (dead-lettered). Messages are known by their stream
// sequence, 1..n on the fresh stream of a run; a redelivery of a settled message
// is not counted again.
type recorder struct {
	stored  []int64 // Unix ns JetStream stored message seq-1
	settled []int64 // Unix ns its settlement was confirmed; 0 until then
	count   atomic.Int64
	dead    atomic.Int64
	all     chan struct{} // closed once every message is settled
	n       int64
}

func newRecorder(n int) *recorder {
	return &recorder{stored: make([]int64, n), settled: make([]int64, n), all: make(chan struct{}), n: int64(n)}
}

// settle records that msg was settled now; dead tells a termination from an ack.
func (r *recorder) settle(msg jetstream.Msg, dead bool) {
	now := time.Now().UnixNano()
	meta, err := msg.Metadata()
	if err != nil || meta.Sequence.Stream == 0 || meta.Sequence.Stream > uint64(len(r.settled)) {
		return
	}
	i := meta.Sequence.Stream - 1
	if !atomic.CompareAndSwapInt64(&r.settled[i], 0, now) {
		return
	}
	atomic.StoreInt64(&r.stored[i], meta.Timestamp.UnixNano())
	if dead {
		r.dead.Add(1)
	}
	if r.count.Add(1) == r.n {
		close(r.all)
	}
}

// latencies returns, for every settled message, the time from its storage to its
// settlement, and the time of the last settlement.
func (r *recorder) latencies() (lat []time.Duration, last time.Time) {
	var lastNS int64
	lat = make([]time.Duration, 0, len(r.settled))
	for i := range r.settled {
		s := atomic.LoadInt64(&r.settled[i])
		if s == 0 {
			continue
		}
		lat = append(lat, time.Duration(s-atomic.LoadInt64(&r.stored[i])))
		lastNS = max(lastNS, s)
	}
	return lat, time.Unix(0, lastNS)
}

// observedConsumer is the durable consumer with every message it hands out
// wrapped so that its settlement is recorded, whichever way the consumer pulls
// (Fetch, FetchNoWait, FetchBytes, Next, Messages, Consume). Everything else goes
// straight through.
type observedConsumer struct {
	jetstream.Consumer
	rec *recorder
}

func (c observedConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	b, err := c.Consumer.Fetch(n, opts...)
	return c.batch(b, err, n)
}

func (c observedConsumer) FetchNoWait(n int) (jetstream.MessageBatch, error) {
	b, err := c.Consumer.FetchNoWait(n)
	return c.batch(b, err, n)
}

func (c observedConsumer) FetchBytes(maxBytes int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	b, err := c.Consumer.FetchBytes(maxBytes, opts...)
	return c.batch(b, err, 64)
}

func (c observedConsumer) Next(opts ...jetstream.FetchOpt) (jetstream.Msg, error) {
	m, err := c.Consumer.Next(opts...)
	if err != nil {
		return m, err
	}
	return observedMsg{Msg: m, rec: c.rec}, nil
}

func (c observedConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	it, err := c.Consumer.Messages(opts...)
	if err != nil {
		return it, err
	}
	return observedMessages{MessagesContext: it, rec: c.rec}, nil
}

func (c observedConsumer) Consume(handle jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	return c.Consumer.Consume(func(m jetstream.Msg) { handle(observedMsg{Msg: m, rec: c.rec}) }, opts...)
}

// batch wraps a fetched batch so that it hands out observed messages (buffer: the
// channel's capacity).
func (c observedConsumer) batch(b jetstream.MessageBatch, err error, buffer int) (jetstream.MessageBatch, error) {
	if err != nil {
		return b, err
	}
	out := make(chan jetstream.Msg, buffer)
	go func() {
		defer close(out)
		for m := range b.Messages() {
			out <- observedMsg{Msg: m, rec: c.rec}
		}
	}()
	return observedBatch{MessageBatch: b, msgs: out}, nil
}

// observedMessages is a message iterator whose messages are observed.
type observedMessages struct {
	jetstream.MessagesContext
	rec *recorder
}

func (it observedMessages) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	m, err := it.MessagesContext.Next(opts...)
	if err != nil {
		return m, err
	}
	return observedMsg{Msg: m, rec: it.rec}, nil
}

// observedBatch is a batch whose messages are observed. Error is read after
// Messages is drained, by when the wrapped batch's error is final.
type observedBatch struct {
	jetstream.MessageBatch
	msgs chan jetstream.Msg
}

func (b observedBatch) Messages() <-chan jetstream.Msg { return b.msgs }

// observedMsg records its settlement.
type observedMsg struct {
	jetstream.Msg
	rec *recorder
}

func (m observedMsg) Ack() error {
	err := m.Msg.Ack()
	if err == nil {
		m.rec.settle(m.Msg, false)
	}
	return err
}

func (m observedMsg) DoubleAck(ctx context.Context) error {
	err := m.Msg.DoubleAck(ctx)
	if err == nil {
		m.rec.settle(m.Msg, false)
	}
	return err
}

func (m observedMsg) Term() error {
	err := m.Msg.Term()
	if err == nil {
		m.rec.settle(m.Msg, true)
	}
	return err
}

func (m observedMsg) TermWithReason(reason string) error {
	err := m.Msg.TermWithReason(reason)
	if err == nil {
		m.rec.settle(m.Msg, true)
	}
	return err
}
