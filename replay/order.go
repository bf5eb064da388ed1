package replay

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/backlog"
	"github.com/ionix/ionixsnow/ionix"
)

// Pass is one pass of a replay over its range: the messages of one urgency band
// (Order), or, for a replay begun by a version that knew no passes, all of them in
// stream order.
type Pass int

// The passes, in the order they run.
const (
	InStreamOrder = Pass(-1)
	PassHigh      = Pass(backlog.High)
	PassMedium    = Pass(backlog.Medium)
	PassLow       = Pass(backlog.Low)
)

// String names the pass as progress shows it.
func (p Pass) String() string {
	if p == InStreamOrder {
		return "stream order"
	}
	return backlog.Band(p).String()
}

// durable names the replay consumer of the pass.
func (p Pass) durable(plan Plan) string {
	if p == InStreamOrder {
		return plan.Durable
	}
	return plan.Durable + "_" + p.String()
}

// description is the pass in the replay consumer's description.
func (p Pass) description() string {
	if p == InStreamOrder {
		return "in stream order"
	}
	return p.String() + "-urgency items"
}

// Order is a replay's send order by urgency band (SPEC §10): the range is re-sent in
// up to three passes, High, then Medium, then Low, each in stream order. Every
// message goes in the pass of its item's most urgent band in the range, so the
// versions, closing and reopening of one item stay together and in stream order; a
// message that does not decode goes with the Low pass (it is dead-lettered there).
type Order struct {
	seqs [3][]uint64 // per band, ascending
}

// order reads the plan's range and sorts its messages into bands.
func order(ctx context.Context, js jetstream.JetStream, stream string, p Plan) (*Order, error) {
	type message struct {
		seq  uint64
		item uint64 // the item's id, hashed; 0: undecodable
	}
	seed := maphash.MakeSeed()
	var read []message
	most := map[uint64]backlog.Band{} // an item's most urgent band in the range
	err := backlog.Each(ctx, js, stream, p.FilterSubjects, p.FirstSeq, p.LastSeq, func(seq uint64, it ionix.ActionItem, decoded bool) {
		m := message{seq: seq}
		if decoded {
			// Two ids of one hash would share the more urgent band: still in order.
			m.item = maphash.String(seed, it.ID) | 1 // never 0
			if b, seen := most[m.item]; !seen || backlog.BandOf(it.Urgency) < b {
				most[m.item] = backlog.BandOf(it.Urgency)
			}
		}
		read = append(read, m)
	})
	if err != nil {
		return nil, err
	}
	o := &Order{}
	for _, m := range read {
		b := backlog.Low
		if m.item != 0 {
			b = most[m.item]
		}
		o.seqs[b] = append(o.seqs[b], m.seq)
	}
	return o, nil
}

// Count is how many messages pass re-sends (InStreamOrder: the whole range).
func (o *Order) Count(pass Pass) uint64 {
	if pass == InStreamOrder {
		return o.Count(PassHigh) + o.Count(PassMedium) + o.Count(PassLow)
	}
	return uint64(len(o.seqs[pass]))
}

// Pass is the band pass that re-sends the message at seq.
func (o *Order) Pass(seq uint64) Pass {
	for b := range o.seqs[:PassLow] {
		if _, found := slices.BinarySearch(o.seqs[b], seq); found {
			return Pass(b)
		}
	}
	return PassLow
}

// Through is how many messages of pass lie at or below seq.
func (o *Order) Through(pass Pass, seq uint64) uint64 {
	if pass == InStreamOrder {
		return o.Through(PassHigh, seq) + o.Through(PassMedium, seq) + o.Through(PassLow, seq)
	}
	i, found := slices.BinarySearch(o.seqs[pass], seq)
	if found {
		i++
	}
	return uint64(i)
}

// Bounds are the first and the last sequence pass re-sends (0, 0 when none).
func (o *Order) Bounds(pass Pass) (first, last uint64) {
	if pass == InStreamOrder {
		for b := range o.seqs {
			if f, l := o.Bounds(Pass(b)); l > 0 {
				first, last = cmp.Or(min(first, f), f), max(last, l)
			}
		}
		return first, last
	}
	if s := o.seqs[pass]; len(s) > 0 {
		return s[0], s[len(s)-1]
	}
	return 0, 0
}

// passes are those with messages, in the order they run.
func (o *Order) passes() []Pass {
	var out []Pass
	for b := range o.seqs {
		if len(o.seqs[b]) > 0 {
			out = append(out, Pass(b))
		}
	}
	return out
}
