package consumer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// accountedBudget grants without limit, at most perGrant a grant (0: all asked, as
// pacing would), and keeps the account of every grant: how many of its sends were
// given back.
type accountedBudget struct {
	budget.Unlimited
	perGrant int
	mu       sync.Mutex
	granted  map[int64]int // by the grant's identity (its At)
	released map[int64]int
	over     []string
}

func (b *accountedBudget) AcquireGrant(ctx context.Context, want int) (budget.Grant, error) {
	if err := ctx.Err(); err != nil {
		return budget.Grant{}, err
	}
	if b.perGrant > 0 {
		want = min(want, b.perGrant)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	id := int64(len(b.granted) + 1)
	b.granted[id] = want
	return budget.Grant{N: want, At: time.Unix(0, id)}, nil
}

func (b *accountedBudget) ReleaseGrant(_ context.Context, g budget.Grant, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := g.At.UnixNano()
	if b.released[id] += n; b.released[id] > b.granted[id] {
		b.over = append(b.over, fmt.Sprintf("grant %d: %d given back of %d", id, b.released[id], b.granted[id]))
	}
	return nil
}

// spent is the grants not given back, and any grant given back more than it held.
func (b *accountedBudget) spent() (int, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for id, g := range b.granted {
		n += g - b.released[id]
	}
	return n, b.over
}

type countingImporter struct {
	consumer.Importer
	n atomic.Int64
}

func (c *countingImporter) Import(ctx context.Context, rec map[string]string) (servicenow.Result, error) {
	c.n.Add(1)
	return c.Importer.Import(ctx, rec)
}

// TestAReplayPassSpendsGrantsOnItsOwnMessagesOnly: a replay's pass (consumer.Replay
// with InPass) acknowledges the other passes' messages and those after its range in
// the pull loop: every grant the budget made is either spent on a send of the pass
// or given back once, whether grants come whole or one at a time (paced).
func TestAReplayPassSpendsGrantsOnItsOwnMessagesOnly(t *testing.T) {
	const n = 400
	pass := map[uint64]bool{100: true, 350: true, 390: true}
	for _, perGrant := range []int{0, 1} {
		t.Run(fmt.Sprint("per grant ", perGrant), func(t *testing.T) {
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			r.publish(t, items("pass", n)...)
			cons := r.durable(t, "replay_pass", 30*time.Second, 0)
			b := &accountedBudget{perGrant: perGrant, granted: map[int64]int{}, released: map[int64]int{}}
			imp := &countingImporter{Importer: r.snow}
			d := r.deps(cons)
			d.Budget, d.Importer = b, imp
			o := consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond,
				Replay: &consumer.Replay{Since: time.Now(), LastSeq: n - 10, InPass: func(seq uint64) bool { return pass[seq] }}}
			_, stop := r.launch(t, d, o)
			testkit.WaitFor(t, 60*time.Second, "the pass's items sent and every message acknowledged", func() bool {
				info, err := cons.Info(context.Background())
				return imp.n.Load() == int64(len(pass)) && err == nil && info.AckFloor.Stream == n
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if spent, over := b.spent(); spent != int(imp.n.Load()) || len(over) > 0 {
				t.Errorf("%d grants spent for %d sends; given back more than granted: %v", spent, imp.n.Load(), over)
			}
		})
	}
}
