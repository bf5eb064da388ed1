package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// BrokerOptions configure a [Broker] run. Zero values take the defaults.
type BrokerOptions struct {
	Items int // messages (default DefaultItems)
	Batch int // messages per Fetch (default DefaultConcurrency, the pipeline's)
	// DoubleAck acknowledges each message with DoubleAck (the server confirms
	// it) instead of Ack (fire and forget).
	DoubleAck bool
	Timeout   time.Duration // default DefaultTimeout
	// NATSURL, when set, is an external nats-server to measure instead of an
	// embedded one (as Options.NATSURL).
	NATSURL string
}

// BrokerResult is what a [Broker] run measured.
type BrokerResult struct {
	Mode           string  `json:"mode"` // broker
	Items          int     `json:"items"`
	Batch          int     `json:"batch"`
	Ack            string  `json:"ack"`     // ack or double_ack
	NATS           string  `json:"nats"`    // NATSInProcess or NATSExternal
	Seconds        float64 `json:"seconds"` // first Fetch to the last ack processed
	ThroughputPerS float64 `json:"throughput_per_s"`
	PublishPerS    float64 `json:"publish_per_s"`
	MaxRSSMB       float64 `json:"max_rss_mb"`
	RSSSource      string  `json:"rss_source"`
}

// Broker measures the broker's own consume ceiling: the stream and durable
// consumer of the topology on the same server (embedded, or o.NATSURL), the same messages
// published the same way as a backlog run, then pulled by one loop with Fetch
// and acknowledged one by one with nothing else done in between. The time runs
// from the first Fetch until the server holds no unacknowledged message.
func Broker(ctx context.Context, o BrokerOptions) (BrokerResult, error) {
	if o.Items <= 0 {
		o.Items = DefaultItems
	}
	if o.Batch <= 0 {
		o.Batch = DefaultConcurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	res := BrokerResult{Mode: ModeBroker, Items: o.Items, Batch: o.Batch, Ack: "ack"}
	if o.DoubleAck {
		res.Ack = "double_ack"
	}
	resetPeakRSS()
	r, err := startRig(rigOptions{natsURL: o.NATSURL})
	if err != nil {
		return res, err
	}
	defer r.close()
	res.NATS = r.where()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	topo, err := topology.Ensure(ctx, r.js, topology.Options{Names: r.names})
	if err != nil {
		return res, err
	}

	in, err := encode(ionix.SampleItems(o.Items, sampleSeed))
	if err != nil {
		return res, err
	}
	begin := time.Now()
	if err := publishAll(ctx, r, in); err != nil {
		return res, err
	}
	res.PublishPerS = perSecond(o.Items, time.Since(begin))

	start := time.Now()
	for got := 0; got < o.Items; {
		batch, err := topo.Consumer.Fetch(min(o.Batch, o.Items-got), jetstream.FetchContext(ctx))
		if err != nil {
			return res, fmt.Errorf("fetch: %w", err)
		}
		for msg := range batch.Messages() {
			if o.DoubleAck {
				err = msg.DoubleAck(ctx)
			} else {
				err = msg.Ack()
			}
			if err != nil {
				return res, fmt.Errorf("ack: %w", err)
			}
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return res, fmt.Errorf("fetch: %w", err)
		}
	}
	if err := r.nc.FlushWithContext(ctx); err != nil {
		return res, fmt.Errorf("flush: %w", err)
	}
	if err := waitConsumer(ctx, topo.Consumer, func(i *jetstream.ConsumerInfo) bool {
		return i.NumAckPending == 0 && i.NumPending == 0
	}); err != nil {
		return res, fmt.Errorf("acks not processed: %w", err)
	}
	d := time.Since(start)
	rss, source := peakRSS()
	res.Seconds, res.ThroughputPerS = d.Seconds(), perSecond(o.Items, d)
	res.MaxRSSMB, res.RSSSource = float64(rss)/(1<<20), source
	return res, nil
}
