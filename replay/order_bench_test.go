package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/replay"
	"github.com/ionix/ionixsnow/topology"
)

// BenchmarkResolveByUrgency: what a replay's plan costs now that it reads the range
// to order it by band — the time Resolve takes and the memory the order holds — for
// ranges of 10,000 and 100,000 messages (one in 50 High, one in 10 Medium).
func BenchmarkResolveByUrgency(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			r := newRig(b)
			for i := range n {
				it := ionix.ActionItem{ID: fmt.Sprintf("it-%06d", i), Title: "Finding", Type: "Cloud", Urgency: 3}
				switch {
				case i%50 == 0:
					it.Urgency = 9.5
				case i%10 == 0:
					it.Urgency = 7.5
				}
				raw, _ := json.Marshal(it)
				m := nats.NewMsg(ionix.Subject("", ionix.EventOpened, it.Type))
				m.Header.Set(topology.HeaderEvent, "opened")
				m.Data = raw
				if _, err := r.js.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
			}
			<-r.js.PublishAsyncComplete()
			b.ResetTimer()
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				plan, err := replay.Resolve(context.Background(), r.js, r.topo.Stream, replay.Range{FromSeq: 1})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if plan.Order.Count(replay.PassHigh) != uint64(n/50) {
					b.Fatalf("%d High in the plan, want %d", plan.Order.Count(replay.PassHigh), n/50)
				}
				b.ReportMetric(float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc))/float64(n), "B-held/msg")
				runtime.KeepAlive(plan)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/msg")
		})
	}
}
