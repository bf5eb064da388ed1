package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/topology"
)

// BenchmarkKVBudgetAcquire3Clients measures grants per second with three clients,
// each with its own connection and KVBudget, contending for one ledger on an
// in-process nats-server. The ledger starts with 1,000 stamps spread over the last
// hour, as under the default cap.
//
//   - acquire+release: each grant of one send is given back at once, so the ledger
//     stays at 1,000 stamps; every grant costs two compare-and-swap writes.
//   - acquire: grants only (the ledger grows by b.N stamps).
func BenchmarkKVBudgetAcquire3Clients(b *testing.B) {
	for _, bc := range []struct {
		name    string
		release bool
	}{{"acquire+release", true}, {"acquire", false}} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := embedded.Start(embedded.Options{StoreDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Stop()
			ctx := context.Background()
			var conflicts atomic.Int64
			ledgerBytes := 0
			budgets := make([]*KVBudget, 3)
			for i := range budgets {
				nc, err := nats.Connect(srv.URL())
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				js, err := jetstream.New(nc)
				if err != nil {
					b.Fatal(err)
				}
				kv, err := topology.EnsureBucket(ctx, js, topology.DefaultBudgetBucket, "budget", 1)
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					now := time.Now().UnixMilli()
					prefill := make(stamps, 1000)
					for j := range prefill {
						prefill[j] = now - 3_600_000 + int64(j)*3_599
					}
					if _, err := kv.Put(ctx, DefaultBudgetKey, encodeStamps(prefill)); err != nil {
						b.Fatal(err)
					}
					ledgerBytes = len(encodeStamps(prefill))
				}
				budgets[i], err = NewKVBudget(benchKV{KeyValue: kv, conflicts: &conflicts}, 1<<20, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for _, bud := range budgets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						g, err := bud.AcquireGrant(ctx, 1)
						if err != nil {
							b.Error(err)
							return
						}
						if bc.release {
							if err := bud.ReleaseGrant(ctx, g, 1); err != nil {
								b.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "grants/s")
			b.ReportMetric(float64(conflicts.Load())/float64(b.N), "conflicts/grant")
			b.ReportMetric(float64(ledgerBytes), "ledger-bytes@1000")
		})
	}
}

// benchKV counts lost compare-and-swaps.
type benchKV struct {
	jetstream.KeyValue
	conflicts *atomic.Int64
}

func (k benchKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	r, err := k.KeyValue.Update(ctx, key, value, rev)
	if isConflict(err) {
		k.conflicts.Add(1)
	}
	return r, err
}
