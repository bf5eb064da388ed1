package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/servicenow"
)

// errConnectionLost is the cause of a run stopped because the server closed the
// NATS connection for good: nats.go reconnects after network failures, but a
// connection the server closes on a protocol error (an over-long control line, an
// authorization violation) stays closed.
var errConnectionLost = errors.New("the NATS server closed the connection")

// watchLost arranges for lost to be called once if the connection ends closed
// without Close being called on it.
func (c *natsConn) watchLost(lost func(error)) {
	var once sync.Once
	c.nc.SetClosedHandler(func(nc *nats.Conn) {
		if c.closing.Load() {
			return
		}
		once.Do(func() {
			err := errConnectionLost
			if last := nc.LastError(); last != nil {
				err = fmt.Errorf("%w: %w", errConnectionLost, last)
			}
			lost(err)
		})
	})
	if c.nc.IsClosed() && !c.closing.Load() {
		once.Do(func() { lost(errConnectionLost) })
	}
}

// redial opens a new connection to the same server (or embedded server) and hands
// the embedded server, if any, over to it; c is closed.
func (c *natsConn) redial(ctx context.Context, log zerolog.Logger) (*natsConn, error) {
	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(250*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		nc, err := dial(c.url, c.cfg, log)
		var next *natsConn
		if err == nil {
			next, err = finishConn(nc, nil, c.url, c.cfg)
		}
		if err == nil {
			next.server, c.server = c.server, nil
			c.Close()
			return next, nil
		}
		wait := bo.NextBackOff()
		log.Warn().Err(err).Dur("retry_in", wait).Msg("cannot connect to NATS again; retrying")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// runReconnecting calls run over conn until ctx ends. When the server closes the
// connection for good, it opens a new one (redial), calls rebuild with it — the
// parts run uses are built again over it — and runs again. It returns run's or
// rebuild's error; the connections it opened are closed when it returns.
func runReconnecting(ctx context.Context, conn *natsConn, log zerolog.Logger, run func(context.Context) error, rebuild func(*natsConn) error) error {
	for {
		runCtx, lost := context.WithCancelCause(ctx)
		conn.watchLost(func(err error) { lost(err) })
		err := run(runCtx)
		cause := context.Cause(runCtx)
		if errors.Is(err, errConnectionLost) {
			// What ran noticed the loss before watchLost did.
			cause, err = err, nil
		}
		lost(nil)
		if err != nil || ctx.Err() != nil || !errors.Is(cause, errConnectionLost) {
			return err
		}
		// Messages in flight on the old connection come back after AckWait.
		log.Error().Err(cause).Msg("NATS connection lost for good; connecting again")
		if conn, err = conn.redial(ctx, log); err != nil {
			return nil // shutting down
		}
		defer conn.Close()
		if err := rebuild(conn); err != nil {
			return err
		}
		log.Info().Msg("connected to NATS again")
	}
}

// live is the pipeline consume runs now, for /metrics and /readyz: rebuilt over a new
// connection when the server closes the old one, it keeps counting in the same
// counters.
type live struct {
	stats *consumer.Stats
	halt  *consumer.Halt
	cur   atomic.Pointer[liveParts]
}

type liveParts struct {
	conn     *natsConn
	consumer *consumer.Consumer
	budget   *budget.KV
}

func newLive() *live { return &live{stats: &consumer.Stats{}, halt: &consumer.Halt{}} }

// carried are the parts every pipeline built over a new connection shares: the
// counters, a halt (a coalesce failure stays one after a reconnection) and the
// ServiceNow client's incident reader and rate-limit pause.
func (l *live) carried(snow *servicenow.Client) consumer.Deps {
	return consumer.Deps{Incidents: snow, RateLimit: snow, Stats: l.stats, Halt: l.halt}
}

func (l *live) set(conn *natsConn, p pipeline) {
	l.cur.Store(&liveParts{conn: conn, consumer: p.consumer, budget: p.budget})
}

// Stats implements metrics.Source.
func (l *live) Stats() consumer.Snapshot { return l.stats.Snapshot() }

// Paused implements metrics.Source.
func (l *live) Paused() consumer.PauseState {
	if p := l.cur.Load(); p != nil && p.consumer != nil {
		return p.consumer.Paused()
	}
	return consumer.PauseState{}
}

// State implements metrics.BudgetReader.
func (l *live) State(ctx context.Context) (budget.State, error) {
	if p := l.cur.Load(); p != nil && p.budget != nil {
		return p.budget.State(ctx)
	}
	return budget.State{}, errors.New("no budget yet")
}

// Backlog is the consumer's backlog (consumer.Consumer.Backlog), 0 without one.
func (l *live) Backlog() uint64 {
	if p := l.cur.Load(); p != nil && p.consumer != nil {
		return p.consumer.Backlog()
	}
	return 0
}

// BacklogByUrgency implements metrics.BacklogSource.
func (l *live) BacklogByUrgency() ([3]int, bool) {
	if p := l.cur.Load(); p != nil && p.consumer != nil {
		return p.consumer.BacklogByUrgency()
	}
	return [3]int{}, false
}

// natsStatus is the state of the connection consume runs on now.
func (l *live) natsStatus() nats.Status {
	if p := l.cur.Load(); p != nil {
		return p.conn.nc.Status()
	}
	return nats.DISCONNECTED
}
