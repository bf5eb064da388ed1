package replay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/replay"
)

// TestResolve finds the range's sequences by time and counts its messages by
// category; the same range always gets the same durable name.
func TestResolve(t *testing.T) {
	r := newRig(t)
	r.publish(t, items(3)...) // sequences 1-3, category Cloud
	last, err := r.topo.Stream.GetMsg(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Second, "the clock to pass the first batch", func() bool { return time.Now().After(last.Time) })
	pki := items(5)[3:]
	for i := range pki {
		pki[i].Type = "PKI"
	}
	r.publish(t, pki...)                     // sequences 4-5
	r.publish(t, item("late", "Late Cloud")) // sequence 6
	after := last.Time.Add(time.Nanosecond)

	for _, tt := range []struct {
		name        string
		rg          replay.Range
		first, last uint64
		total       uint64
	}{
		{"from a sequence", replay.Range{FromSeq: 2}, 2, 6, 5},
		{"since a time", replay.Range{Since: after}, 4, 6, 3},
		{"until a time", replay.Range{FromSeq: 1, Until: last.Time}, 1, 3, 3},
		{"one category", replay.Range{FromSeq: 1, FilterSubjects: []string{"ionix.action_items.*.pki"}}, 1, 6, 2},
		{"since before the stream", replay.Range{Since: last.Time.Add(-time.Hour)}, 1, 6, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, tt.rg)
			if err != nil {
				t.Fatal(err)
			}
			if p.FirstSeq != tt.first || p.LastSeq != tt.last || p.Total != tt.total {
				t.Errorf("plan %d-%d with %d messages, want %d-%d with %d", p.FirstSeq, p.LastSeq, p.Total, tt.first, tt.last, tt.total)
			}
			again, _ := replay.Resolve(context.Background(), r.js, r.topo.Stream, tt.rg)
			if again.Durable != p.Durable || p.Durable == "" {
				t.Errorf("durable names %q and %q for one range", p.Durable, again.Durable)
			}
		})
	}
	for _, rg := range []replay.Range{
		{Since: time.Now().Add(time.Hour)},
		{FromSeq: 99},
		{FromSeq: 1, FilterSubjects: []string{"ionix.action_items.*.dns"}},
	} {
		if _, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, rg); !errors.Is(err, replay.ErrNothingToReplay) {
			t.Errorf("range %+v: %v, want ErrNothingToReplay", rg, err)
		}
	}
}
