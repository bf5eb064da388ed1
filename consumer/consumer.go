package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
)

// Importer posts one import record to ServiceNow. *servicenow.Client implements it.
type Importer interface {
	Import(ctx context.Context, record map[string]string) (servicenow.Result, error)
}

// Options tune the consumer. Zero values take the defaults.
type Options struct {
	// Concurrency is how many messages are held and posted at once (default 4).
	Concurrency int
	Filter      mapping.Filter
	Mapping     mapping.Options
	// ResolveOnClose re-posts a ticketed item with state Resolved on its closing event,
	// and with state In Progress on an opened event that follows it (a reopening).
	// Every opened event then costs a ledger lookup.
	ResolveOnClose bool
	// MaxBackoff caps the redelivery delay after a failed post and the interval
	// between probes while sending is paused (default 5m).
	MaxBackoff time.Duration
	// ProbeInterval is the first interval between probes once sending is paused
	// (default 1s); it doubles after each failed probe up to MaxBackoff.
	ProbeInterval time.Duration
	// PullAhead is how many messages are pulled ahead of the workers (default
	// 4 × Concurrency), so that a worker finishing a post finds the next message in hand
	// instead of waiting for a pull; they are granted by the budget like the rest.
	// Negative: none, each pull is for idle workers only (a replica whose posts all
	// hang then holds nothing another replica could send).
	PullAhead int
	// FetchWait is how long one pull request waits for messages (default 2s).
	FetchWait time.Duration
	// AckWait is the durable consumer's AckWait (default 2m): a post that runs
	// longer marks its message in progress every third of it.
	AckWait time.Duration
	// MaxDeliver is the durable consumer's MaxDeliver (0: unlimited). A message
	// that fails on its last delivery is dead-lettered instead of returned.
	MaxDeliver int
	// ItemPrefix is the subject prefix of this consumer's tenant's items
	// (topology.Names.ItemSubjectPrefix): a message below it with more than
	// <event>.<category> after it is another tenant's (SPEC §9) and is acknowledged
	// unsent. Empty: no such check.
	ItemPrefix string
	// Doorbell, when set, is rung (without blocking) when a message may have reached
	// this consumer's subjects. After a pull that brought nothing the loop then waits
	// for it — or for IdleRecheck, or for a message it returned with a delay to come
	// back — instead of pulling again at once, so an idle consumer makes no request
	// and takes no grant (a process serving many tenants, SPEC §9). Nil: pull again
	// at once, each pull waiting FetchWait at the server.
	Doorbell <-chan struct{}
	// IdleRecheck bounds that wait (default AckWait, spread by up to a quarter):
	// messages another replica held when it died come back after AckWait without a
	// ring.
	IdleRecheck time.Duration
	// GaveBack, when set, is called when Run, stopping, has given the messages it
	// held but had not started back to the stream (before it waits for the posts in
	// flight): a tenant's pipeline rings the other replicas' doorbells with it.
	GaveBack func()
	// Returns, when set, is the schedule of the messages given back with a delay that
	// this consumer shares with the consumers before and after it (a tenant's
	// pipelines one after the other); nil: its own.
	Returns *Returns
	// Express sends High and then Medium items ahead of the stream order while the
	// cap holds a backlog back (SPEC §10, express.go). It needs Deps.Stream.
	Express bool
	// Replay, when set, makes this consumer re-send a range of the stream.
	Replay *Replay
	// DrainTimeout bounds how long Run waits for in-flight posts after its context
	// ends (default 30s); posts still running then are cancelled and their messages
	// redelivered later.
	DrainTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Concurrency < 1 {
		o.Concurrency = 4
	}
	switch {
	case o.PullAhead == 0:
		o.PullAhead = 4 * o.Concurrency
	case o.PullAhead < 0:
		o.PullAhead = 0
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = time.Second
	}
	if o.FetchWait <= 0 {
		o.FetchWait = 2 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 2 * time.Minute
	}
	if o.IdleRecheck <= 0 {
		o.IdleRecheck = o.AckWait
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	return o
}

// RateLimited tells until when ServiceNow asked for no requests (a 429's
// Retry-After); zero or past when it did not.
type RateLimited interface {
	PausedUntil() time.Time
}

// Deps are the parts the consumer works with.
type Deps struct {
	Consumer jetstream.Consumer
	// JetStream is the connection's JetStream context: requeued copies are
	// published, advisories watched and confirmed naks requested through it.
	JetStream   jetstream.JetStream
	Importer    Importer
	Ledger      *ledger.Tickets
	DeadLetters *dlq.Queue
	Budget      budget.Granter // nil means budget.Unlimited
	// Stream is the action-item stream. Optional: without it a newest version that
	// an older one may have overtaken cannot be requeued, and messages the server
	// gives up on (MaxDeliver) are not dead-lettered from its advisories.
	Stream jetstream.Stream
	// Incidents, optional, reads ServiceNow's incidents (Table API): when an import
	// makes a second incident for an item, it tells a coalesce failure (sending
	// halts) from an incident deleted in ServiceNow. Without it every second
	// incident halts sending.
	Incidents IncidentFinder
	// RateLimit, optional, tells when the pause ServiceNow imposed with a 429 ends
	// (*servicenow.Client): a post waits it out before it renews a stale grant, so
	// that the send is counted when it is made.
	RateLimit RateLimited
	// Claims, optional, lets one replica's express lane at a time send a message
	// ahead (Options.Express); nil: every replica's lane may.
	Claims *Claims
	// Slots, optional, bounds the posts in flight over every consumer that shares
	// it (see SendSlots); nil: only Options.Concurrency bounds them.
	Slots SendSlots
	// Stats, optional, are the counters to count in: a consumer built again over a
	// new connection keeps counting where the one before stopped.
	Stats *Stats
	// Halt, optional, is shared the same way: a consumer built again after a halt
	// (ErrNoCoalesce) halts too.
	Halt *Halt
	Log  zerolog.Logger
}

// Consumer pulls action-item events and turns them into ServiceNow incidents.
type Consumer struct {
	d     Deps
	o     Options
	stats *Stats
	brk   *breaker
	locks idLocks
	now   func() time.Time
	// instance tells this consumer's ledger entries from other replicas'.
	instance string
	// x is the express lane (Options.Express); nil: none. sends orders the
	// requests of pulled messages while it is engaged.
	x     *express
	sends sendOrder
	// stream identifies the stream instance (ledger.Ticket.Stream, see stream.go); read
	// again when it may have changed (streamStale) and every streamCheckEvery.
	stream      atomic.Pointer[string]
	streamStale atomic.Bool
	// pendingSeen is the durable consumer's pending count in the metadata of the
	// last message delivered: the backlog not pulled yet (see Backlog).
	pendingSeen atomic.Uint64
	// returns is when the messages this consumer gave back with a delay come back,
	// for the idle wait (idle.go): Options.Returns, or its own.
	returns       *Returns
	itemPrefix    string    // Options.ItemPrefix and its dot, made once ("": none)
	lastPullEmpty bool      // pull loop only: the last pull brought no message
	streamReadAt  time.Time // pull loop only
	pullEndedAt   time.Time // pull loop only
	lastPullShort bool      // pull loop only
	lastDelivery  uint64    // the last consumer sequence fetched; pull loop only
	// stopping is set when Run's context ends: messages returned from then on are
	// returned with a confirmed nak (see nak).
	stopping atomic.Bool
}

// New returns a consumer; it does nothing until Run.
func New(d Deps, o Options) (*Consumer, error) {
	var missing []error
	if d.Consumer == nil {
		missing = append(missing, errors.New("consumer: no JetStream consumer"))
	}
	if d.JetStream == nil {
		missing = append(missing, errors.New("consumer: no JetStream context"))
	}
	if d.Importer == nil {
		missing = append(missing, errors.New("consumer: no ServiceNow importer"))
	}
	if d.Ledger == nil {
		missing = append(missing, errors.New("consumer: no ticket ledger"))
	}
	if d.DeadLetters == nil {
		missing = append(missing, errors.New("consumer: no dead-letter stream"))
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	if d.Budget == nil {
		d.Budget = budget.Unlimited{}
	}
	if d.Stats == nil {
		d.Stats = &Stats{}
	}
	if d.Halt == nil {
		d.Halt = &Halt{}
	}
	c := &Consumer{d: d, o: o.withDefaults(), stats: d.Stats, now: time.Now, instance: newInstanceID()}
	c.setStream(streamInstance(d.Stream))
	c.streamReadAt = c.now()
	c.lastPullShort = true // the first pull asks for one message
	if c.o.ItemPrefix != "" {
		c.itemPrefix = c.o.ItemPrefix + "."
	}
	c.returns = c.o.Returns
	if c.returns == nil {
		c.returns = NewReturns()
	}
	c.brk = newBreaker(c.o.ProbeInterval, c.o.MaxBackoff, c.now, d.Log)
	if c.o.Express && d.Stream != nil && c.o.Replay == nil {
		c.x = newExpress(c)
		if h, ok := d.Budget.(holdNotifier); ok {
			h.OnHold(c.x.held)
		}
		if d.Claims != nil {
			claims := *d.Claims
			claims.owner = c.instance
			c.d.Claims = &claims
		}
	}
	c.brk.shared = d.Halt
	if cause := d.Halt.Cause(); cause != nil {
		c.brk.halt(cause)
	}
	return c, nil
}

// Paused reports whether sending is paused (ServiceNow down or misconfigured) and why.
func (c *Consumer) Paused() PauseState { return c.brk.state() }

// Stats returns the consumer's counters.
func (c *Consumer) Stats() Snapshot { return c.stats.Snapshot() }

func (c *Consumer) drain(wg *sync.WaitGroup, cancelWork context.CancelFunc) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(c.o.DrainTimeout):
		c.d.Log.Warn().Dur("drain_timeout", c.o.DrainTimeout).Msg("posts still in flight at shutdown; cancelling them (their messages will be redelivered)")
		cancelWork()
		<-done
	}
}

// confirmTimeout bounds the wait for the server's confirmation of a nak at shutdown.
const confirmTimeout = 2 * time.Second

// nak returns msg for redelivery after delay. While the consumer stops, it waits for
// the server's confirmation (a nak sent as a request, answered once the server has
// processed it, as a double ack is): a process that exits, or an embedded server
// that stops, right after cannot lose it and leave the message waiting out AckWait.
func (c *Consumer) nak(msg jetstream.Msg, delay time.Duration) error {
	c.expectRedelivery(delay)
	if !c.stopping.Load() || msg.Reply() == "" {
		return msg.NakWithDelay(delay)
	}
	// Always with a delay: the server keeps a nak with one in the consumer's stored
	// state (a plain nak only in memory, lost if the server stops next).
	body := fmt.Appendf(nil, `-NAK {"delay": %d}`, max(delay, time.Nanosecond).Nanoseconds())
	ctx, cancel := context.WithTimeout(context.Background(), confirmTimeout)
	defer cancel()
	if _, err := c.conn().RequestWithContext(ctx, msg.Reply(), body); err != nil {
		return fmt.Errorf("nak not confirmed: %w", err)
	}
	return nil
}

// isFetchEnd tells the normal ends of a pull (expiry, our own deadline) from failures.
func isFetchEnd(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, jetstream.ErrNoMessages)
}

func giveSlots(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}

// sleep sleeps d, reporting false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Backlog is the number of messages the durable consumer had not delivered yet when
// it delivered the last one to this consumer (its metadata says): the backlog behind
// what this replica holds, read without a request. Zero before the first delivery.
func (c *Consumer) Backlog() uint64 { return c.pendingSeen.Load() }
