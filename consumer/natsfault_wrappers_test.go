package consumer_test

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/servicenow"
)

// gatedImporter passes imports to ServiceNow; once armed with holdFrom(n), the n-th
// import and every later one wait until open is called (or their context ends).
type gatedImporter struct {
	consumer.Importer

	mu       sync.Mutex
	from     int // 0: nothing is held
	started  int
	held     int
	release  chan struct{}
	finished atomic.Int64
}

func (g *gatedImporter) holdFrom(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.from, g.release, g.held = n, make(chan struct{}), 0
}

// open lets the held imports (and all later ones) through and returns how many were
// held.
func (g *gatedImporter) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
	g.from = 0
	return g.held
}

func (g *gatedImporter) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

func (g *gatedImporter) startedCount() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return int64(g.started)
}

func (g *gatedImporter) finishedCount() int64 { return g.finished.Load() }

func (g *gatedImporter) Import(ctx context.Context, record map[string]string) (servicenow.Result, error) {
	g.mu.Lock()
	g.started++
	var gate chan struct{}
	if g.from > 0 && g.started >= g.from {
		gate = g.release
		g.held++
	}
	g.mu.Unlock()
	defer g.finished.Add(1)
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return servicenow.Result{}, ctx.Err()
		}
	}
	return g.Importer.Import(ctx, record)
}

// trackedConsumer counts the messages the consumer holds: fetched and not yet
// settled (acked, naked or terminated, whether or not the server heard it).
type trackedConsumer struct {
	jetstream.Consumer
	fetched, settled atomic.Int64
}

func (c *trackedConsumer) inFlight() int64 { return c.fetched.Load() - c.settled.Load() }

func (c *trackedConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	b, err := c.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	return wrapBatch(b, func(m jetstream.Msg) jetstream.Msg {
		c.fetched.Add(1)
		return &trackedMsg{Msg: m, c: c}
	}), nil
}

type trackedMsg struct {
	jetstream.Msg
	c    *trackedConsumer
	done atomic.Bool
}

func (m *trackedMsg) settle(err error) error {
	if m.done.CompareAndSwap(false, true) {
		m.c.settled.Add(1)
	}
	return err
}

func (m *trackedMsg) Ack() error                          { return m.settle(m.Msg.Ack()) }
func (m *trackedMsg) DoubleAck(ctx context.Context) error { return m.settle(m.Msg.DoubleAck(ctx)) }
func (m *trackedMsg) Nak() error                          { return m.settle(m.Msg.Nak()) }
func (m *trackedMsg) NakWithDelay(d time.Duration) error  { return m.settle(m.Msg.NakWithDelay(d)) }
func (m *trackedMsg) Term() error                         { return m.settle(m.Msg.Term()) }
func (m *trackedMsg) TermWithReason(r string) error       { return m.settle(m.Msg.TermWithReason(r)) }

// interesting returns the last limit lines of logs, leaving out the successful posts.
func interesting(logs string, limit int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"message":"sent to ServiceNow"`) {
			lines = append(lines, sc.Text())
		}
	}
	if len(lines) > limit {
		lines = append([]string{fmt.Sprintf("(%d earlier lines left out)", len(lines)-limit)}, lines[len(lines)-limit:]...)
	}
	return strings.Join(lines, "\n")
}
