package bench

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
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
	for _, tc := range []struct {
		name string
		o    Options
		mode string
	}{
		{"backlog", Options{Items: 120, Concurrency: 4}, ModeBacklog},
		{"rate", Options{Items: 60, Concurrency: 2, Rate: 600, Latency: time.Millisecond}, ModeRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Mode != tc.mode || res.Items != tc.o.Items || res.Concurrency != tc.o.Concurrency {
				t.Errorf("result %+v does not echo the options %+v", res, tc.o)
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

func TestBroker(t *testing.T) {
	for _, double := range []bool{false, true} {
		res, err := Broker(context.Background(), BrokerOptions{Items: 200, Batch: 16, DoubleAck: double})
		if err != nil {
			t.Fatal(err)
		}
		if res.Mode != ModeBroker || res.Items != 200 || res.ThroughputPerS <= 0 || res.MaxRSSMB <= 0 {
			t.Errorf("result %+v", res)
		}
		if want := map[bool]string{false: "ack", true: "double_ack"}[double]; res.Ack != want {
			t.Errorf("ack %q, want %q", res.Ack, want)
		}
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
