// Package backlog knows which of a pipeline's pending messages are High, Medium or
// Low (SPEC §10): an Index of stream sequences per ServiceNow urgency band, filled
// by a Follower that reads the pipeline's subjects on the stream without taking
// part in delivery (an ordered consumer: no acks, no redeliveries, nothing held). The
// consumer's express lane takes its High and Medium items from it ahead of the
// stream order; status counts the backlog by band.
package backlog

import (
	"slices"
	"sync"

	"github.com/ionix/ionixsnow/mapping"
)

// Band is a ServiceNow urgency band.
type Band int

// The bands, most urgent first.
const (
	High Band = iota
	Medium
	Low
	bands
)

// String is the band's name as status and metrics show it.
func (b Band) String() string {
	switch b {
	case High:
		return "high"
	case Medium:
		return "medium"
	}
	return "low"
}

// BandOf is the band of an IONIX urgency (mapping.Urgency: ≥ 9.0 High, ≥ 7.0 Medium).
func BandOf(urgency float64) Band {
	switch mapping.Urgency(urgency) {
	case mapping.LevelHigh:
		return High
	case mapping.LevelMedium:
		return Medium
	}
	return Low
}

// Index is the pending messages of a pipeline by band: their stream sequences, in
// stream order. It is safe for concurrent use.
type Index struct {
	mu      sync.Mutex
	seqs    [bands][]uint64 // ascending; not taken
	taken   map[uint64]Band // being sent (Take), not settled yet
	floor   uint64          // every sequence at or below it is settled
	changed chan struct{}   // closed and replaced when a High or Medium sequence comes
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{changed: make(chan struct{}), taken: map[uint64]Band{}} }

// Add records a pending message. Sequences come in ascending order per band; one at
// or below the floor, or already there, is ignored.
func (ix *Index) Add(seq uint64, b Band) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if seq <= ix.floor || b < 0 || b >= bands {
		return
	}
	if _, taken := ix.taken[seq]; taken {
		return
	}
	s := ix.seqs[b]
	i, found := slices.BinarySearch(s, seq)
	if found {
		return
	}
	ix.seqs[b] = slices.Insert(s, i, seq)
	if b < Low { // what the express lane waits for
		close(ix.changed)
		ix.changed = make(chan struct{})
	}
}

// Take marks the message at seq (of band b, as First gave it) as being sent: First
// skips it until Done or Return.
func (ix *Index) Take(seq uint64, b Band) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if i, found := slices.BinarySearch(ix.seqs[b], seq); found {
		ix.seqs[b] = slices.Delete(ix.seqs[b], i, i+1)
		ix.taken[seq] = b
	}
}

// Return puts a taken message back, its send not made.
func (ix *Index) Return(seq uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	b, ok := ix.taken[seq]
	if !ok {
		return
	}
	delete(ix.taken, seq)
	if seq <= ix.floor {
		return
	}
	s := ix.seqs[b]
	i, _ := slices.BinarySearch(s, seq)
	ix.seqs[b] = slices.Insert(s, i, seq)
}

// Done removes a message that was settled (sent, or found sent), taken or not.
func (ix *Index) Done(seq uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, ok := ix.taken[seq]; ok {
		delete(ix.taken, seq)
		return
	}
	for b := range ix.seqs {
		if i, found := slices.BinarySearch(ix.seqs[b], seq); found {
			ix.seqs[b] = slices.Delete(ix.seqs[b], i, i+1)
			return
		}
	}
}

// Settled removes every message at or below floor: the durable consumer's ack floor.
func (ix *Index) Settled(floor uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if floor <= ix.floor {
		return
	}
	ix.floor = floor
	for b := range ix.seqs {
		i, _ := slices.BinarySearch(ix.seqs[b], floor+1)
		ix.seqs[b] = slices.Delete(ix.seqs[b], 0, i)
	}
	for seq := range ix.taken {
		if seq <= floor {
			delete(ix.taken, seq)
		}
	}
}

// First is the oldest pending message of the most urgent band that has one at or
// above band, with the band; ok is false when none does.
func (ix *Index) First(upTo Band) (seq uint64, b Band, ok bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for b := High; b <= upTo && b < bands; b++ {
		if len(ix.seqs[b]) > 0 {
			return ix.seqs[b][0], b, true
		}
	}
	return 0, Low, false
}

// Counts is how many messages are pending in each band, those being sent included.
func (ix *Index) Counts() (counts [3]int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for b := range ix.seqs {
		counts[b] = len(ix.seqs[b])
	}
	for _, b := range ix.taken {
		counts[b]++
	}
	return counts
}

// Pending is band b's pending messages not being sent, in stream order.
func (ix *Index) Pending(b Band) []uint64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return slices.Clone(ix.seqs[b])
}

// Changed is closed when a High or Medium message is next added.
func (ix *Index) Changed() <-chan struct{} {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.changed
}
