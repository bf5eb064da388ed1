package consumer

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow"
)

func TestBreakerOpensBacksOffAndCloses(t *testing.T) {
	t.Parallel()
	transient := &servicenow.Error{Class: servicenow.ClassTransient, StatusCode: 503, Message: "down"}
	config := &servicenow.Error{Class: servicenow.ClassConfiguration, StatusCode: 403, Message: "ACL", Fix: "add the ACL"}
	rejected := &servicenow.Error{Class: servicenow.ClassPermanent, StatusCode: 400, Message: "bad"}
	limited := &servicenow.Error{Class: servicenow.ClassTransient, StatusCode: 429, RetryAfter: 90 * time.Second}

	type step struct {
		advance  time.Duration
		outcome  error // recorded after advancing
		paused   bool
		config   bool
		nextIn   time.Duration // from now, when paused
		describe string
		// sentAgo is how long before the outcome its request was sent.
		sentAgo time.Duration
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"transient failures trip after three in a row", []step{
			{0, transient, false, false, 0, "one failure does not pause", 0},
			{0, transient, false, false, 0, "two do not either", 0},
			{0, transient, true, false, time.Second, "the third pauses for the first interval", 0},
			{time.Second, transient, true, false, 2 * time.Second, "a failed probe doubles the interval", 0},
			{2 * time.Second, transient, true, false, 4 * time.Second, "and again", 0},
			{4 * time.Second, nil, false, false, 0, "a successful probe resumes", 0},
			{0, transient, false, false, 0, "the count starts over after a success", 0},
		}},
		{"posts in flight before the pause do not move the probe", []step{
			{0, transient, false, false, 0, "", 0},
			{0, transient, false, false, 0, "", 0},
			{0, transient, true, false, time.Second, "paused", 0},
			{100 * time.Millisecond, transient, true, false, 900 * time.Millisecond, "sent before the pause: probe stays due in 1s", 200 * time.Millisecond},
			{900 * time.Millisecond, transient, true, false, 2 * time.Second, "the failed probe doubles the interval", 0},
			{0, nil, false, false, 0, "a success of an older post still resumes", 5 * time.Second},
		}},
		{"configuration error pauses at once, capped backoff", []step{
			{0, config, true, true, time.Second, "403 pauses immediately", 0},
			{time.Second, config, true, true, 2 * time.Second, "", 0},
			{2 * time.Second, config, true, true, 4 * time.Second, "", 0},
			{4 * time.Second, config, true, true, 5 * time.Second, "capped at max backoff", 0},
			{5 * time.Second, config, true, true, 5 * time.Second, "stays capped", 0},
			{5 * time.Second, nil, false, false, 0, "fixed: resumes on its own", 0},
		}},
		{"a rejected item proves ServiceNow is up", []step{
			{0, config, true, true, time.Second, "", 0},
			{time.Second, rejected, false, false, 0, "permanent for the item, fine for the service", 0},
		}},
		{"Retry-After longer than the interval wins", []step{
			{0, limited, false, false, 0, "", 0},
			{0, limited, false, false, 0, "", 0},
			{0, limited, true, false, 90 * time.Second, "", 0},
		}},
		{"our own cancellation is not a failure", []step{
			{0, context.Canceled, false, false, 0, "", 0},
			{0, &net.OpError{Op: "dial", Err: context.Canceled}, false, false, 0, "", 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			b := newBreaker(time.Second, 5*time.Second, clk.Now, zerolog.Nop())
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				b.record(s.outcome, clk.Now().Add(-s.sentAgo))
				st := b.state()
				if st.Paused != s.paused || st.Configuration != s.config {
					t.Fatalf("step %d (%s): paused=%v config=%v, want %v %v", i, s.describe, st.Paused, st.Configuration, s.paused, s.config)
				}
				if s.paused {
					if got := st.NextProbeAt.Sub(clk.Now()); got != s.nextIn {
						t.Errorf("step %d (%s): next probe in %s, want %s", i, s.describe, got, s.nextIn)
					}
					if !errors.Is(st.Cause, s.outcome) {
						t.Errorf("step %d: cause = %v", i, st.Cause)
					}
				}
			}
		})
	}
}

func TestBreakerAdmitsOneProbeWhenDue(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(time.Unix(0, 0))
	b := newBreaker(time.Second, time.Minute, clk.Now, zerolog.Nop())
	if n, err := b.admit(context.Background(), 4); err != nil || n != 4 {
		t.Fatalf("closed breaker admitted %d (%v), want 4", n, err)
	}
	b.record(&servicenow.Error{Class: servicenow.ClassConfiguration, StatusCode: 404}, clk.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.admit(ctx, 4); !errors.Is(err, context.Canceled) {
		t.Fatalf("open breaker before the probe time: %v, want to block until ctx ends", err)
	}
	clk.Advance(time.Second)
	if n, err := b.admit(context.Background(), 4); err != nil || n != 1 {
		t.Fatalf("due probe admitted %d (%v), want 1", n, err)
	}
}
