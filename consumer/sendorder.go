package consumer

import "sync"

// sendOrder makes the import requests of pulled messages start in fetch order while
// the express lane sorts a backlog (SPEC §10: within a band, stream order). Workers
// handle messages side by side, and one whose ledger read or claim took longer would
// otherwise post after the next; under the cap nothing is lost by waiting, since the
// budget sets the pace. Each message pulled then gets a turn: it waits, before its
// waits to send, until the message pulled before it started its request (or gave up
// on one).
type sendOrder struct {
	mu   sync.Mutex
	last *sendTurn
}

// sendTurn is one message's place in the send order.
type sendTurn struct {
	after   *sendTurn // the message pulled before it (nil: none waited for)
	started chan struct{}
	once    sync.Once
}

// next is the turn of the next message pulled.
func (o *sendOrder) next() *sendTurn {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := &sendTurn{after: o.last, started: make(chan struct{})}
	o.last = t
	return t
}

// reset drops the chain: messages pulled from now on wait for none pulled before.
func (o *sendOrder) reset() {
	o.mu.Lock()
	o.last = nil
	o.mu.Unlock()
}

// wait blocks until the message before started its request, or done closes.
func (t *sendTurn) wait(done <-chan struct{}) {
	if t == nil || t.after == nil {
		return
	}
	select {
	case <-t.after.started:
	case <-done:
	}
}

// start marks the message's request started (or given up on). Safe to call twice.
func (t *sendTurn) start() {
	if t != nil {
		t.once.Do(func() { close(t.started) })
	}
}
