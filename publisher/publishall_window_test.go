package publisher

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
)

// gatedJS holds back the acknowledgements of asynchronous publishes: the oldest
// is released only once max are outstanding, or when every item was sent. It
// records how many were outstanding at each publish.
type gatedJS struct {
	jetstream.JetStream
	max, total int

	mu             sync.Mutex
	gates          []chan struct{}
	calls          int
	maxOutstanding int
}

func (g *gatedJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	fut, err := g.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	gate := make(chan struct{})
	g.mu.Lock()
	g.calls++
	g.gates = append(g.gates, gate)
	g.maxOutstanding = max(g.maxOutstanding, len(g.gates))
	release := len(g.gates) >= g.max
	if g.calls == g.total {
		release = true
	}
	if release {
		// Release from another goroutine, so that a publisher that does not
		// wait for its window could send more before the release.
		go g.release(g.calls == g.total)
	}
	g.mu.Unlock()
	return newGatedFuture(fut, gate), nil
}

func (g *gatedJS) release(all bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.gates) > 0 {
		close(g.gates[0])
		g.gates = g.gates[1:]
		if !all {
			return
		}
	}
}

type gatedFuture struct {
	jetstream.PubAckFuture
	ok  chan *jetstream.PubAck
	err chan error
}

func newGatedFuture(real jetstream.PubAckFuture, gate chan struct{}) *gatedFuture {
	f := &gatedFuture{PubAckFuture: real, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		<-gate
		select {
		case a := <-real.Ok():
			f.ok <- a
		case e := <-real.Err():
			f.err <- e
		}
	}()
	return f
}

func (f *gatedFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *gatedFuture) Err() <-chan error            { return f.err }

func TestPublishAllBoundsAcknowledgementsInFlight(t *testing.T) {
	_, js, stream := testStream(t)
	const items = 200
	for _, window := range []int{1, 7, 64} {
		t.Run(fmt.Sprintf("max in flight %d", window), func(t *testing.T) {
			g := &gatedJS{JetStream: js, max: window, total: items}
			var sawInFlight int
			res, err := New(g, "").PublishAll(context.Background(), strings.NewReader(ndjsonItems(fmt.Sprintf("w%d", window), items)), ionix.EventOpened,
				&PublishAllOptions{MaxInFlight: window, ProgressInterval: time.Millisecond, Progress: func(p Progress) {
					sawInFlight = max(sawInFlight, p.InFlight)
				}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Published != items {
				t.Errorf("published %d, want %d", res.Published, items)
			}
			if g.maxOutstanding != window {
				t.Errorf("at most %d acknowledgements outstanding, want exactly the window %d", g.maxOutstanding, window)
			}
			if sawInFlight > window {
				t.Errorf("progress reported %d in flight, more than the window %d", sawInFlight, window)
			}
		})
	}
	if n := streamMessages(t, stream); n != 3*items {
		t.Errorf("stream holds %d messages, want %d", n, 3*items)
	}
}

// overlapJS records whether a version of an item was sent while an earlier
// version of it was still awaiting its acknowledgement. A publish stops counting
// as outstanding just before its outcome is handed over, so PublishAll cannot
// have seen it yet: there are no false alarms.
type overlapJS struct {
	jetstream.JetStream

	mu          sync.Mutex
	outstanding map[string]int // item id -> publishes awaiting acknowledgement
	overlaps    []string
}

func (o *overlapJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	item, err := ionix.Decode(m.Data)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	if o.outstanding[item.ID] > 0 {
		o.overlaps = append(o.overlaps, item.Title)
	}
	o.outstanding[item.ID]++
	o.mu.Unlock()
	fut, err := o.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	f := &gatedFuture{PubAckFuture: fut, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		var ack *jetstream.PubAck
		var ackErr error
		select {
		case ack = <-fut.Ok():
		case ackErr = <-fut.Err():
		}
		o.mu.Lock()
		o.outstanding[item.ID]--
		o.mu.Unlock()
		if ackErr != nil {
			f.err <- ackErr
		} else {
			f.ok <- ack
		}
	}()
	return f, nil
}

func TestPublishAllSendsVersionsOfOneItemInOrder(t *testing.T) {
	_, js, stream := testStream(t)
	var b strings.Builder
	const versions = 30
	for v := range versions {
		fmt.Fprintf(&b, `{"id":"same","title":"version %d","type":"DNS","urgency":5}`+"\n", v)
		fmt.Fprintf(&b, `{"id":"other-%d","title":"other","type":"DNS","urgency":5}`+"\n", v)
	}
	o := &overlapJS{JetStream: js, outstanding: make(map[string]int)}
	res, err := New(o, "").PublishAll(context.Background(), strings.NewReader(b.String()), ionix.EventOpened, nil)
	if err != nil || res.Published != 2*versions {
		t.Fatalf("result %+v, err %v", res, err)
	}
	if len(o.overlaps) > 0 {
		t.Errorf("sent while an earlier version was unacknowledged: %v", o.overlaps)
	}
	v := 0
	for seq := uint64(1); seq <= 2*versions; seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m.Data), `"id":"same"`) {
			if want := fmt.Sprintf(`"title":"version %d"`, v); !strings.Contains(string(m.Data), want) {
				t.Errorf("message %d is %s, want version %d", seq, m.Data, v)
			}
			v++
		}
	}
}
