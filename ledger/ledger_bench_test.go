package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/topology"
)

// ledgerBenchKeys is how many distinct items the replace and get cases cycle
// through (one ledger entry each).
const ledgerBenchKeys = 1000

// newBenchLedger returns a ledger over the ticket bucket of a fresh in-process
// nats-server (file storage in a temporary directory), created as the topology
// creates it.
func newBenchLedger(b *testing.B) *ledger.Tickets {
	b.Helper()
	js := natstest.Connect(b, natstest.Start(b).URL())
	kv, err := topology.EnsureBucket(context.Background(), js, topology.DefaultTicketsBucket, "bench", 1)
	if err != nil {
		b.Fatal(err)
	}
	return ledger.New(kv)
}

// ledgerBenchID is a UUID-shaped action item id, as IONIX sends them.
func ledgerBenchID(i int) string { return fmt.Sprintf("5f3c2a1e-0b6d-4c1e-9a7f-%012x", i) }

func ledgerBenchTicket(i int, seq uint64) ledger.Ticket {
	return ledger.Ticket{
		Fingerprint: "0123456789abcdef", SysID: fmt.Sprintf("%032x", i), Number: fmt.Sprintf("INC%07d", 10001+i),
		Status: "inserted", SentAt: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC), StreamSeq: seq, PostedBy: "bench",
	}
}

// BenchmarkLedgerRecord records one ticket per op, sequentially, as a consumer does
// after ServiceNow accepted a post.
//
//   - first: a new item each op; Create succeeds (one request).
//   - replace: an item that has a ticket, with a later stream sequence; Create
//     fails, then Get and a compare-and-swap Update (three requests).
func BenchmarkLedgerRecord(b *testing.B) {
	for _, bc := range []struct {
		name    string
		replace bool
	}{{"first", false}, {"replace", true}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			l := newBenchLedger(b)
			if bc.replace {
				for i := range ledgerBenchKeys {
					if _, _, _, err := l.Record(ctx, ledgerBenchID(i), ledgerBenchTicket(i, 1)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := i
				if bc.replace {
					k = i % ledgerBenchKeys
				}
				_, found, written, err := l.Record(ctx, ledgerBenchID(k), ledgerBenchTicket(k, uint64(i+2)))
				if err != nil {
					b.Fatal(err)
				}
				if !written || found != bc.replace {
					b.Fatalf("record %d: written %v, found %v; want written, found %v", i, written, found, bc.replace)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkLedgerGet reads one ticket per op (the redelivery check before a post),
// cycling through 1,000 entries.
func BenchmarkLedgerGet(b *testing.B) {
	ctx := context.Background()
	l := newBenchLedger(b)
	for i := range ledgerBenchKeys {
		if err := l.Put(ctx, ledgerBenchID(i), ledgerBenchTicket(i, 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := i % ledgerBenchKeys
		t, ok, err := l.Get(ctx, ledgerBenchID(k))
		if err != nil {
			b.Fatal(err)
		}
		if !ok || t.Number != fmt.Sprintf("INC%07d", 10001+k) {
			b.Fatalf("get %d: %+v, found %v", k, t, ok)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
