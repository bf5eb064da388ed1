// Package fairshare shares a fixed number of slots among named parties round-robin:
// when the slots are all taken, each one freed goes to the next party in turn that is
// waiting, not to whichever asked first. Turns count slots handed out, not slots
// held. consume uses it for the process's posts to ServiceNow when it serves many
// tenants (SPEC §9): each tenant has consumer.concurrency workers asking, and a
// tenant that starts asking gets the next slot but one or two, instead of queueing
// behind every worker of the tenants already draining backlogs.
package fairshare

import (
	"context"
	"sync"
)

// Pool holds the slots. Its zero value has none; make one with New.
type Pool struct {
	mu   sync.Mutex
	free int
	// ring is the parties that wait, in turn order; next is the one whose turn it
	// is. A party is in the ring exactly while it has waiters.
	ring []*Share
	next int
}

// New returns a pool of n slots (at least 1).
func New(n int) *Pool {
	return &Pool{free: max(n, 1)}
}

// Share is one party's access to the pool. Its slots are taken with Acquire.
type Share struct {
	pool    *Pool
	name    string
	waiters []chan struct{} // FIFO; each is closed when granted a slot
	held    int
}

// For returns a new share of the pool for the party name. Each share takes its own
// turns: make one per party (two shares of one name are two parties).
func (p *Pool) For(name string) *Share { return &Share{pool: p, name: name} }

// Name is the party's name.
func (s *Share) Name() string { return s.name }

// Acquire waits for a slot and returns the function that frees it (a second call
// frees nothing). It fails only when ctx ends first (or has ended); then no slot is
// held.
func (s *Share) Acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := s.pool
	p.mu.Lock()
	if p.free > 0 && len(p.ring) == 0 {
		p.free--
		s.held++
		p.mu.Unlock()
		return s.releaser(), nil
	}
	granted := make(chan struct{})
	s.waiters = append(s.waiters, granted)
	if len(s.waiters) == 1 {
		p.ring = append(p.ring, s)
	}
	p.mu.Unlock()
	select {
	case <-granted:
		return s.releaser(), nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-granted: // granted as ctx ended: hand it on
		s.held--
		p.handOn()
	default:
		s.dropWaiter(granted)
	}
	return nil, ctx.Err()
}

// Held is how many slots the party holds now.
func (s *Share) Held() int {
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	return s.held
}

func (s *Share) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			p := s.pool
			p.mu.Lock()
			defer p.mu.Unlock()
			s.held--
			p.handOn()
		})
	}
}

// handOn gives a freed slot to the first waiter of the party whose turn it is, or
// keeps it free when nobody waits. Called with mu held.
func (p *Pool) handOn() {
	if len(p.ring) == 0 {
		p.free++
		return
	}
	if p.next >= len(p.ring) {
		p.next = 0
	}
	s := p.ring[p.next]
	w := s.waiters[0]
	s.waiters = s.waiters[1:]
	s.held++
	close(w)
	if len(s.waiters) == 0 {
		p.leave(p.next) // the next party moves into this place
		return
	}
	p.next++
}

// dropWaiter removes a waiter that gave up. Called with mu held.
func (s *Share) dropWaiter(w chan struct{}) {
	for i, x := range s.waiters {
		if x == w {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			break
		}
	}
	if len(s.waiters) > 0 {
		return
	}
	p := s.pool
	for i, x := range p.ring {
		if x == s {
			p.leave(i)
			return
		}
	}
}

// leave takes the party at i out of the ring, keeping the turn where it was.
func (p *Pool) leave(i int) {
	p.ring = append(p.ring[:i], p.ring[i+1:]...)
	if i < p.next {
		p.next--
	}
	if p.next >= len(p.ring) {
		p.next = 0
	}
}

// Free is how many slots nobody holds.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.free
}

// Waiting is how many Acquire calls wait for a slot.
func (p *Pool) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.ring {
		n += len(s.waiters)
	}
	return n
}
