package budget

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/topology"
)

// BenchmarkKVAcquire3Clients measures grants per second with three clients,
// each with its own connection and KV, contending for one ledger on an
// in-process nats-server. The ledger starts with 1,000 grants spread over the last
// hour, as under the default cap.
//
//   - acquire+release: each grant of one send is given back at once, so the ledger
//     stays at 1,000 grants; every grant costs two compare-and-swap writes.
//   - acquire: grants only (the ledger grows by b.N grants).
func BenchmarkKVAcquire3Clients(b *testing.B) {
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
			budgets := make([]*KV, 3)
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
					entry := prefillEntry(time.Now().UnixMilli(), 1000, time.Hour.Milliseconds())
					if _, err := kv.Put(ctx, DefaultKey, entry); err != nil {
						b.Fatal(err)
					}
					ledgerBytes = len(entry)
				}
				budgets[i], err = NewKV(benchKV{KeyValue: kv, conflicts: &conflicts}, 1<<20, time.Hour)
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

// BenchmarkKVCapCost measures one grant and its release (two reads and two
// compare-and-swap writes on an in-process nats-server, one client) with the
// window full but for 10 slots, at caps of 10^3, 10^5 and 10^8 sends an hour: the
// cost must not grow with the cap. entry-bytes is the ledger's size.
func BenchmarkKVCapCost(b *testing.B) {
	for _, c := range []int{1_000, 100_000, 100_000_000} {
		b.Run(fmt.Sprintf("cap=%d", c), func(b *testing.B) {
			srv, err := embedded.Start(embedded.Options{StoreDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Stop()
			ctx := context.Background()
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
			entry := prefillEntry(time.Now().UnixMilli(), c-10, time.Hour.Milliseconds())
			if _, err := kv.Put(ctx, DefaultKey, entry); err != nil {
				b.Fatal(err)
			}
			bud, err := NewKV(kv, c, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				g, err := bud.AcquireGrant(ctx, 1)
				if err != nil {
					b.Fatal(err)
				}
				if err := bud.ReleaseGrant(ctx, g, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			e, err := kv.Get(ctx, DefaultKey)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(e.Value())), "entry-bytes")
		})
	}
}

// prefillEntry is a ledger entry of used grants spread evenly over the slices
// of the window ending at now, in the budget's default slices (window/1,000).
func prefillEntry(now int64, used int, window int64) []byte {
	w := slidingWindow{q: max(window/1000, 1)}
	var l ledger
	first := w.slice(now - window + w.q) // still live for the next window
	for j := range int64(1000) {
		n := int64(used)/1000 + b2i(j < int64(used)%1000)
		if n > 0 {
			l = l.add(first+j, n)
		}
	}
	return encodeLedger(l, w.q, 0)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// BenchmarkLedgerGrantCPU is the CPU part of one grant, without the round trips:
// decode the entry, drop what expired, grant one send, encode, with the window full
// but for 10 slots, at caps of 10^3, 10^5 and 10^8 sends an hour.
func BenchmarkLedgerGrantCPU(b *testing.B) {
	for _, c := range []int{1_000, 100_000, 100_000_000} {
		b.Run(fmt.Sprintf("cap=%d", c), func(b *testing.B) {
			now := time.Now().UnixMilli()
			window := time.Hour.Milliseconds()
			entry := prefillEntry(now, c-10, window)
			w := slidingWindow{max: int64(c), span: window + window/100 + 1, q: window / 1000, future: window / 100}
			b.ReportAllocs()
			for b.Loop() {
				l, _, err := decodeLedger(entry, w.q, 1<<16)
				if err != nil {
					b.Fatal(err)
				}
				l, n, _ := w.grant(w.liveOnly(l, now), now, 1)
				if n != 1 {
					b.Fatalf("granted %d", n)
				}
				_ = encodeLedger(l, w.q, 0)
			}
			b.ReportMetric(float64(len(entry)), "entry-bytes")
		})
	}
}
