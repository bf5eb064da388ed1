package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options says how to create the topology.
type Options struct {
	Names Names
	// Replicas of every stream and bucket: 1 for one server, 3 in a cluster.
	Replicas int
	// FilterSubjects of the durable consumer; empty means the whole stream.
	FilterSubjects []string
	// MaxAckPending of the durable consumer, shared by every replica pulling from it.
	// Zero takes the server default.
	MaxAckPending int
	// AckWait of the durable consumer; zero takes AckWait (2m).
	AckWait time.Duration
	// MaxDeliver of the durable consumer; zero means unlimited.
	MaxDeliver int
}

// Topology holds handles on the objects Ensure created or found.
type Topology struct {
	Names    Names
	Stream   jetstream.Stream
	Consumer jetstream.Consumer
	DLQ      jetstream.Stream
	Tickets  jetstream.KeyValue
	Budget   jetstream.KeyValue
}

func (o Options) ackWait() time.Duration {
	if o.AckWait <= 0 {
		return AckWait
	}
	return o.AckWait
}

func (o Options) maxDeliver() int {
	if o.MaxDeliver <= 0 {
		return -1
	}
	return o.MaxDeliver
}

func (o Options) replicas() int {
	if o.Replicas < 1 {
		return 1
	}
	return o.Replicas
}

// Ensure creates or updates the stream, dead-letter stream, durable consumer and the
// ticket and budget buckets. It is safe to call from many processes at once.
func Ensure(ctx context.Context, js jetstream.JetStream, o Options) (*Topology, error) {
	o.Names = o.Names.WithDefaults()
	t := &Topology{Names: o.Names}
	var err error
	if t.Stream, err = EnsureStream(ctx, js, o); err != nil {
		return nil, err
	}
	if t.DLQ, err = EnsureDLQ(ctx, js, o); err != nil {
		return nil, err
	}
	if t.Consumer, err = EnsureConsumer(ctx, js, o); err != nil {
		return nil, err
	}
	if t.Tickets, err = EnsureBucket(ctx, js, o.Names.TicketsBucket, "action item id -> ServiceNow ticket", o.replicas()); err != nil {
		return nil, err
	}
	if t.Budget, err = EnsureBucket(ctx, js, o.Names.BudgetBucket, "global sliding-window ledger of ServiceNow sends", o.replicas()); err != nil {
		return nil, err
	}
	return t, nil
}

// StreamConfig is the configuration of the action-item stream.
func StreamConfig(o Options) jetstream.StreamConfig {
	n := o.Names.WithDefaults()
	return jetstream.StreamConfig{
		Name:        n.Stream,
		Description: "IONIX action-item events (opened, closed)",
		Subjects:    []string{n.StreamSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      StreamMaxAge,
		Duplicates:  DuplicateWindow,
		Replicas:    o.replicas(),
	}
}

// EnsureStream creates or updates the action-item stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, StreamConfig(o))
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamConfig(o).Name, err)
	}
	return s, nil
}

// EnsureDLQ creates or updates the dead-letter stream. Dead letters are kept until an
// operator purges or re-drives them, so it has no age limit.
func EnsureDLQ(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	n := o.Names.WithDefaults()
	cfg := jetstream.StreamConfig{
		Name:        n.DLQStream,
		Description: "ionixsnow dead letters: action items that could not become incidents",
		Subjects:    []string{n.DLQSubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  DuplicateWindow,
		Replicas:    o.replicas(),
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure dead-letter stream %s: %w", n.DLQStream, err)
	}
	return s, nil
}

// ConsumerConfig is the configuration of the durable pull consumer.
func ConsumerConfig(o Options) jetstream.ConsumerConfig {
	n := o.Names.WithDefaults()
	filters := o.FilterSubjects
	if len(filters) == 0 {
		filters = []string{n.StreamSubjects()}
	}
	return jetstream.ConsumerConfig{
		Durable:        n.Consumer,
		Description:    "ionixsnow: action items to ServiceNow incidents",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.ackWait(),
		MaxDeliver:     o.maxDeliver(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: filters,
		MaxAckPending:  o.MaxAckPending,
		Replicas:       o.replicas(),
	}
}

// EnsureConsumer creates or updates the durable pull consumer. A changed category
// filter updates FilterSubjects in place; the consumer keeps its position.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Consumer, error) {
	cfg := ConsumerConfig(o)
	c, err := js.CreateOrUpdateConsumer(ctx, StreamConfig(o).Name, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", cfg.Durable, err)
	}
	return c, nil
}

// EnsureBucket creates the key-value bucket if it does not exist and returns it.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, name, description string, replicas int) (jetstream.KeyValue, error) {
	replicas = max(replicas, 1)
	kv, err := js.KeyValue(ctx, name)
	if err == nil && bucketReplicas(ctx, kv) == replicas {
		return kv, nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	// Missing, or with another replica count (nats.replicas changed): create or
	// update it in place; its keys stay.
	kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update bucket %s: %w", name, err)
	}
	return kv, nil
}

// bucketReplicas is the bucket's replica count, or 0 when it cannot be read.
func bucketReplicas(ctx context.Context, kv jetstream.KeyValue) int {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return bs.StreamInfo().Config.Replicas
	}
	return 0
}
