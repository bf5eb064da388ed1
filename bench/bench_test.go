package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/topology"
)

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"median of even is the lower", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 0.90, 90 * time.Millisecond},
		{"max", ms(1, 5, 9), 1, 9 * time.Millisecond},
		{"zero quantile is the min", ms(3, 4), 0, 3 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.sorted, tc.q); got != tc.want {
				t.Errorf("quantile(%v, %g) = %v, want %v", tc.sorted, tc.q, got, tc.want)
			}
		})
	}
}

func TestParseVmHWM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status string
		want   uint64
		ok     bool
	}{
		{"linux", "Name:\tbench\nVmPeak:\t  900000 kB\nVmHWM:\t   123456 kB\nVmRSS:\t  100000 kB\n", 123456 * 1024, true},
		{"missing", "Name:\tbench\nVmRSS:\t  100000 kB\n", 0, false},
		{"other unit", "VmHWM:\t 12 MB\n", 0, false},
		{"garbage", "VmHWM:\t lots kB\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseVmHWM([]byte(tc.status))
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseVmHWM = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestPeakRSS(t *testing.T) {
	n, source := peakRSS()
	if n == 0 {
		t.Fatalf("peak RSS 0 (from %s)", source)
	}
	if runtime.GOOS == "linux" && source != "VmHWM" {
		t.Errorf("on Linux the peak comes from %s, want VmHWM", source)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []string // substrings of the error; none: valid
	}{
		{"zero takes the defaults", Options{}, nil},
		{"rate mode", Options{Items: 10, Concurrency: 4, Latency: 50 * time.Millisecond, Rate: 500}, nil},
		{"too many items", Options{Items: 2_000_000}, []string{"items"}},
		{"every problem at once", Options{Items: -1, Concurrency: 5000, Latency: -time.Second, Rate: -1},
			[]string{"items", "concurrency", "latency", "rate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted invalid options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestRun(t *testing.T) {
	external := natstest.Start(t).URL()
	for _, tc := range []struct {
		name   string
		o      Options
		mode   string
		budget string
		nats   string
	}{
		{"backlog", Options{Items: 120, Concurrency: 4}, ModeBacklog, BudgetKV, NATSInProcess},
		{"rate", Options{Items: 60, Concurrency: 2, Rate: 600, Latency: time.Millisecond}, ModeRate, BudgetKV, NATSInProcess},
		{"cap off", Options{Items: 80, Concurrency: 4, CapOff: true}, ModeBacklog, BudgetOff, NATSInProcess},
		{"external server", Options{Items: 80, Concurrency: 4, NATSURL: external}, ModeBacklog, BudgetKV, NATSExternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Mode != tc.mode || res.Items != tc.o.Items || res.Concurrency != tc.o.Concurrency {
				t.Errorf("result %+v does not echo the options %+v", res, tc.o)
			}
			if res.Budget != tc.budget || res.NATS != tc.nats {
				t.Errorf("budget %q, NATS %q; want %q, %q", res.Budget, res.NATS, tc.budget, tc.nats)
			}
			// Every send was granted through the budget bucket, or none.
			if want := map[string]int{BudgetKV: tc.o.Items, BudgetOff: 0}[tc.budget]; res.BudgetUsed < want || res.BudgetUsed > want+tc.o.Concurrency {
				t.Errorf("budget ledger holds %d grants, want %d (at most %d more in flight)", res.BudgetUsed, want, tc.o.Concurrency)
			}
			if res.Created != int64(tc.o.Items) || res.Imports != tc.o.Items || res.DeadLettered != 0 {
				t.Errorf("created %d, imports %d, dead-lettered %d; want %d, %d, 0", res.Created, res.Imports, res.DeadLettered, tc.o.Items, tc.o.Items)
			}
			if res.ThroughputPerS <= 0 || res.PublishPerS <= 0 || res.DrainPerS <= 0 {
				t.Errorf("rates %+v not positive", res)
			}
			if !(0 < res.P50MS && res.P50MS <= res.P90MS && res.P90MS <= res.P99MS && res.P99MS <= res.MaxMS) {
				t.Errorf("latencies not ordered: p50 %g p90 %g p99 %g max %g", res.P50MS, res.P90MS, res.P99MS, res.MaxMS)
			}
			if res.MaxRSSMB <= 0 {
				t.Errorf("max RSS %g", res.MaxRSSMB)
			}
			if tc.o.Latency > 0 && res.P50MS < ms(tc.o.Latency) {
				t.Errorf("p50 %g ms below the emulator's latency %s", res.P50MS, tc.o.Latency)
			}
		})
	}
}

// An external server is shared: a run there neither touches what it already holds
// nor leaves anything behind, and a second run finds it as the first did.
func TestRunOnExternalServer(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	held, err := topology.Ensure(ctx, js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	item := ionix.SampleItems(1, 99)[0]
	raw, err := json.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.New(js, "").Publish(ctx, raw, item, ionix.EventOpened); err != nil {
		t.Fatal(err)
	}
	before := objectNames(t, js)

	for run := range 2 {
		res, err := Run(ctx, Options{Items: 50, Concurrency: 4, NATSURL: srv.URL()})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if res.Created != 50 || res.NATS != NATSExternal {
			t.Errorf("run %d: created %d on NATS %q; want 50 on %q", run, res.Created, res.NATS, NATSExternal)
		}
		if after := objectNames(t, js); !slices.Equal(after, before) {
			t.Errorf("run %d: the server holds %q, held %q before", run, after, before)
		}
	}
	info, err := held.Consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 1 || info.Delivered.Consumer != 0 {
		t.Errorf("the server's own consumer has %d pending and %d delivered; want 1 and 0 (untouched)", info.NumPending, info.Delivered.Consumer)
	}
}

// objectNames lists the streams (buckets are streams too) a server holds, sorted.
func objectNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var names []string
	l := js.StreamNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func TestRunNoExternalServer(t *testing.T) {
	addr := natstest.FreeAddrs(t, 1)[0] // nothing listens there
	_, err := Run(context.Background(), Options{Items: 10, NATSURL: "nats://" + addr})
	if err == nil || !strings.Contains(err.Error(), "external nats-server") {
		t.Fatalf("Run against no server: %v, want an error naming the external nats-server", err)
	}
}

func TestBroker(t *testing.T) {
	external := natstest.Start(t).URL()
	for _, tc := range []struct {
		name string
		o    BrokerOptions
		ack  string
		nats string
	}{
		{"ack", BrokerOptions{Items: 200, Batch: 16}, "ack", NATSInProcess},
		{"double ack", BrokerOptions{Items: 200, Batch: 16, DoubleAck: true}, "double_ack", NATSInProcess},
		{"external server", BrokerOptions{Items: 200, Batch: 16, NATSURL: external}, "ack", NATSExternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Broker(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Mode != ModeBroker || res.Items != 200 || res.ThroughputPerS <= 0 || res.MaxRSSMB <= 0 {
				t.Errorf("result %+v", res)
			}
			if res.Ack != tc.ack || res.NATS != tc.nats {
				t.Errorf("ack %q, NATS %q; want %q, %q", res.Ack, res.NATS, tc.ack, tc.nats)
			}
		})
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	if _, err := Run(context.Background(), Options{Items: -5}); err == nil {
		t.Fatal("Run accepted -5 items")
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{Items: 50}); err == nil {
		t.Fatal("Run with a cancelled context succeeded")
	}
}

// BenchmarkPipeline runs the backlog bench once per iteration (use -benchtime 3x),
// with the ServiceNow client's default HTTP transport and with one that keeps as many
// idle connections as there are posts in flight:
//
//	go test -run '^$' -bench Pipeline -benchtime 3x ./bench
func BenchmarkPipeline(b *testing.B) {
	keepAlive := http.DefaultTransport.(*http.Transport).Clone()
	keepAlive.MaxIdleConnsPerHost = 64
	for _, tc := range []struct {
		name string
		hc   *http.Client
	}{
		{"transport=default", nil},
		{"transport=idle64", &http.Client{Transport: keepAlive}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var items, cpu, secs float64
			for b.Loop() {
				res, err := Run(context.Background(), Options{Items: 10000, Concurrency: 16, HTTPClient: tc.hc})
				if err != nil {
					b.Fatal(err)
				}
				items += float64(res.Items)
				cpu += res.CPUMSPerItem * float64(res.Items)
				secs += res.Seconds
			}
			b.ReportMetric(items/secs, "items/s")
			b.ReportMetric(cpu/items, "cpu-ms/item")
		})
	}
}
