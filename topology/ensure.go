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
	// RequestTimeout bounds each JetStream API request; zero takes
	// DefaultRequestTimeout (5s).
	RequestTimeout time.Duration
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

func (o Options) requestTimeout() time.Duration {
	if o.RequestTimeout <= 0 {
		return DefaultRequestTimeout
	}
	return o.RequestTimeout
}

// Ensure creates or updates the stream, dead-letter stream, durable consumer and the
// ticket and budget buckets. It is safe to call from many processes at once, and to
// call again after it failed: each object is created with its configuration, which the
// server answers with the object as it is when it already exists with that
// configuration, also when another replica created it a moment ago; only an object
// that exists with another configuration is then updated. Each request is bounded by
// Options.RequestTimeout; one left unanswered fails Ensure with ErrUnanswered, which
// Starting reports, for the caller to call Ensure again.
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
	timeout := o.requestTimeout()
	if t.Tickets, err = ensureBucket(ctx, js, o.Names.TicketsBucket, "action item id -> ServiceNow ticket", o.replicas(), timeout); err != nil {
		return nil, err
	}
	if t.Budget, err = ensureBucket(ctx, js, o.Names.BudgetBucket, "global sliding-window ledger of ServiceNow sends", o.replicas(), timeout); err != nil {
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
	cfg := StreamConfig(o)
	s, err := ensureStream(ctx, js, cfg, o.requestTimeout())
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// DLQConfig is the configuration of the dead-letter stream. Dead letters are kept
// until an operator purges or re-drives them, so it has no age limit.
func DLQConfig(o Options) jetstream.StreamConfig {
	n := o.Names.WithDefaults()
	return jetstream.StreamConfig{
		Name:        n.DLQStream,
		Description: "ionixsnow dead letters: action items that could not become incidents",
		Subjects:    []string{n.DLQSubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  DuplicateWindow,
		Replicas:    o.replicas(),
	}
}

// EnsureDLQ creates or updates the dead-letter stream.
func EnsureDLQ(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	cfg := DLQConfig(o)
	s, err := ensureStream(ctx, js, cfg, o.requestTimeout())
	if err != nil {
		return nil, fmt.Errorf("ensure dead-letter stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// ensureStream creates the stream, or updates it when the server answers that it
// exists with another configuration. It never sends an update that changes nothing:
// when a stream update meets a replicated create of the same stream in flight,
// nats-server answers neither (it did every time three replicas started together),
// while the same create sent by several replicas is answered, but for now and then
// one of them, which the caller asks again (ErrUnanswered).
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, timeout time.Duration) (jetstream.Stream, error) {
	s, err := request(ctx, timeout, "create", func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateStream(ctx, cfg)
	})
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return s, err
	}
	return request(ctx, timeout, "update", func(ctx context.Context) (jetstream.Stream, error) {
		return js.UpdateStream(ctx, cfg)
	})
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
// filter updates FilterSubjects in place; the consumer keeps its position. Like a
// stream it is created, and updated only when it exists with another configuration.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Consumer, error) {
	cfg := ConsumerConfig(o)
	stream := StreamConfig(o).Name
	timeout := o.requestTimeout()
	c, err := request(ctx, timeout, "create", func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateConsumer(ctx, stream, cfg)
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		c, err = request(ctx, timeout, "update", func(ctx context.Context) (jetstream.Consumer, error) {
			return js.UpdateConsumer(ctx, stream, cfg)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", cfg.Durable, err)
	}
	return c, nil
}

// EnsureBucket creates the key-value bucket, or updates it when it exists with another
// configuration (nats.replicas changed: its keys stay), and returns it.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, name, description string, replicas int) (jetstream.KeyValue, error) {
	return ensureBucket(ctx, js, name, description, replicas, DefaultRequestTimeout)
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, name, description string, replicas int, timeout time.Duration) (jetstream.KeyValue, error) {
	return ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		History:     1,
	}, timeout)
}

// ensureKV creates the bucket of cfg, or updates it when it exists with another
// configuration, each request with its own timeout.
func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, timeout time.Duration) (jetstream.KeyValue, error) {
	kv, err := request(ctx, timeout, "create", func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateKeyValue(ctx, cfg)
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = request(ctx, timeout, "update", func(ctx context.Context) (jetstream.KeyValue, error) {
			return js.UpdateKeyValue(ctx, cfg)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// EnsureIntegrations creates (or updates) the bucket of the tenants' settings
// (ionix_integrations, SPEC §9) and returns it.
func EnsureIntegrations(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.KeyValue, error) {
	return ensureBucket(ctx, js, o.Names.WithDefaults().IntegrationsBucket,
		"ionixsnow: each tenant's integration settings (secrets sealed)", o.replicas(), o.requestTimeout())
}

// EnsureTenantReports creates (or updates) the bucket of the replicas' reports of
// each tenant's sending: memory storage, entries expire after ttl.
func EnsureTenantReports(ctx context.Context, js jetstream.JetStream, o Options, ttl time.Duration) (jetstream.KeyValue, error) {
	return ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      o.Names.WithDefaults().TenantReportsBucket,
		Description: "ionixsnow: each consume replica's report of each tenant's sending",
		Storage:     jetstream.MemoryStorage,
		Replicas:    o.replicas(),
		History:     1,
		TTL:         ttl,
	}, o.requestTimeout())
}

// DLQCounts reads how many dead letters of the names' tenant each subject of the
// dead-letter stream holds (DLQSubjectOf), and the stream's last sequence. A missing
// stream is jetstream.ErrStreamNotFound, wrapped.
func DLQCounts(ctx context.Context, js jetstream.JetStream, n Names) (counts map[string]uint64, lastSeq uint64, err error) {
	n = n.WithDefaults()
	s, err := js.Stream(ctx, n.DLQStream)
	if err != nil {
		return nil, 0, fmt.Errorf("dead-letter stream %s: %w", n.DLQStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(n.DLQFilter()))
	if err != nil {
		return nil, 0, fmt.Errorf("dead-letter stream %s: %w", n.DLQStream, err)
	}
	counts = map[string]uint64{}
	for subject, c := range info.State.Subjects {
		if DLQSubjectOf(n, subject) {
			counts[subject] = c
		}
	}
	return counts, info.State.LastSeq, nil
}
