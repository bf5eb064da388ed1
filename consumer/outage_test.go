package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestServiceNowFaultsPauseSendingAndLoseNothing switches real faults on in the
// emulator while items flow: sending pauses (no dead letters), probes come at most
// once per backoff interval, and sending resumes on its own within an interval of
// the fix, every item arriving exactly once.
func TestServiceNowFaultsPauseSendingAndLoseNothing(t *testing.T) {
	t.Parallel()
	const (
		probeInterval = 100 * time.Millisecond
		maxBackoff    = 800 * time.Millisecond
		// faultFor lets the backoff grow to its cap: probes 100, 200, 400 and
		// 800ms apart take 1.5s.
		faultFor    = 1600 * time.Millisecond
		concurrency = 4
	)
	tests := []struct {
		name   string
		fault  func(*emulator.Config)
		config bool // a configuration problem (not ready) rather than an outage
	}{
		{"outage answering 503", func(c *emulator.Config) { c.Outage = emulator.Outage{Mode: emulator.Outage503} }, false},
		{"outage resetting connections", func(c *emulator.Config) { c.Outage = emulator.Outage{Mode: emulator.OutageReset} }, false},
		{"instance hibernating", func(c *emulator.Config) { c.Hibernating = true }, false},
		{"import role removed", func(c *emulator.Config) { c.Roles = []string{emulator.RoleIntegration} }, true},
		{"create ACL missing", func(c *emulator.Config) { c.MissingACLs = []string{emulator.ACLCreate} }, true},
	}
	// The cases run at once: each mostly waits out its fault and backoff.
	var cases sync.WaitGroup
	for _, tt := range tests {
		cases.Go(func() {
			t.Run(tt.name, func(t *testing.T) {
				filter := mapping.Filter{UrgencyThreshold: 1}
				r := newRig(t, filter, emulator.Options{})
				c := r.startWith(t, r.topo.Consumer, consumer.Options{
					Filter: filter, Mapping: mapping.DefaultOptions(), Concurrency: concurrency,
					ProbeInterval: probeInterval, MaxBackoff: maxBackoff, FetchWait: 200 * time.Millisecond,
				})
				r.publish(t, items("before", 3)...)
				r.waitDrained(t)

				healthy := r.sim.Config()
				broken := healthy
				tt.fault(&broken)
				if err := r.sim.SetConfig(broken); err != nil {
					t.Fatal(err)
				}
				faultAt := time.Now()
				r.publish(t, items("during", 12)...)
				testkit.WaitFor(t, 10*time.Second, "sending to pause", func() bool { return c.Paused().Paused })
				if p := c.Paused(); p.Configuration != tt.config {
					t.Errorf("pause for a configuration problem = %v, want %v (cause %v)", p.Configuration, tt.config, p.Cause)
				}
				// Let the backoff grow to its cap, then fix ServiceNow.
				testkit.WaitFor(t, 10*time.Second, "probes to back off", func() bool { return time.Since(faultAt) > faultFor })
				if err := r.sim.SetConfig(healthy); err != nil {
					t.Fatal(err)
				}
				fixedAt := time.Now()
				r.waitDrained(t)

				if s := c.Stats(); s.DeadLettered != 0 || s.Created != 15 {
					t.Errorf("stats = %+v, want 15 created and no dead letter", s)
				}
				for _, in := range r.sim.Incidents() {
					if in.Inserts != 1 {
						t.Errorf("%s inserted %d times", in.Number, in.Inserts)
					}
				}
				if n := len(r.sim.Incidents()); n != 15 {
					t.Errorf("%d incidents, want 15", n)
				}
				var failed []time.Time
				var firstOKAfterFix time.Time
				for _, req := range r.sim.Requests() {
					if !strings.Contains(req.Path, "/api/now/import/") || req.At.Before(faultAt) {
						continue
					}
					if req.At.Before(fixedAt) {
						failed = append(failed, req.At)
					} else if firstOKAfterFix.IsZero() && req.Status < 300 {
						firstOKAfterFix = req.At
					}
				}
				// After the breaker trips, the posts already in flight may still fail;
				// from then on each request is a probe, at most one per interval.
				skip := 3 + concurrency
				for i := skip + 1; i < len(failed); i++ {
					if gap := failed[i].Sub(failed[i-1]); gap < probeInterval-20*time.Millisecond {
						t.Errorf("probe %d came %s after the previous one, less than the %s interval", i, gap, probeInterval)
					}
				}
				t.Logf("%d import requests during the fault; sending resumed %s after the fix", len(failed), firstOKAfterFix.Sub(fixedAt).Round(time.Millisecond))
				if len(failed) > skip+6 {
					t.Errorf("%d import requests during a %s fault; probes should be ~5 (%s doubling to %s)", len(failed), faultFor, probeInterval, maxBackoff)
				}
				if wait := firstOKAfterFix.Sub(fixedAt); firstOKAfterFix.IsZero() || wait > maxBackoff+time.Second {
					t.Errorf("sending resumed %s after the fix, want within one interval (%s)", wait, maxBackoff)
				}
			})
		})
	}
	cases.Wait()
}

func items(prefix string, n int) []ionix.ActionItem {
	out := make([]ionix.ActionItem, n)
	for i := range out {
		id := fmt.Sprintf("%s-%d", prefix, i)
		out[i] = item(id, "Finding "+id, "Cloud", 8, "2024-01-01T00:00:00Z")
	}
	return out
}

// startWith runs a consumer with the given options until the test ends.
func (r *rig) startWith(t *testing.T, cons jetstream.Consumer, o consumer.Options) *consumer.Consumer {
	t.Helper()
	return r.run(t, r.deps(cons), o)
}

// deps are the usual parts of a consumer over cons.
func (r *rig) deps(cons jetstream.Consumer) consumer.Deps {
	return consumer.Deps{
		Consumer:    cons,
		Importer:    r.snow,
		Ledger:      ledger.New(r.topo.Tickets),
		JetStream:   r.js,
		DeadLetters: dlq.New(r.js, r.topo.Names),
		Stream:      r.topo.Stream,
		Log:         zerolog.Nop(),
	}
}

// run runs a consumer over d until the test ends.
func (r *rig) run(t *testing.T, d consumer.Deps, o consumer.Options) *consumer.Consumer {
	t.Helper()
	c, stop := r.launch(t, d, o)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

// launch runs a consumer over d until stop, which returns Run's error.
func (r *rig) launch(t *testing.T, d consumer.Deps, o consumer.Options) (c *consumer.Consumer, stop func() error) {
	t.Helper()
	c, err := consumer.New(d, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return c, func() error { cancel(); return <-done }
}
