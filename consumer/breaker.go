package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/servicenow"
)

// tripAfter is how many transient failures in a row stop sending.
const tripAfter = 3

// breaker stops all sending when ServiceNow is down (tripAfter transient failures in
// a row) or misconfigured (one configuration failure: 401 after re-auth, 403, 404).
// While open, the fetch loop pulls nothing; when the backoff interval has passed it
// lets exactly one message through as a probe. The probe's success closes the breaker
// and sending resumes at full speed; its failure opens it for the next, longer
// interval (exponential, capped at MaxBackoff). So a process probes at most once per
// interval, and resumes within one interval of recovery.
type breaker struct {
	mu        sync.Mutex
	open      bool
	halted    bool  // open for good: a coalesce failure (halt), no probes
	shared    *Halt // records a halt for a breaker built after this one (may be nil)
	failures  int
	class     servicenow.Class
	cause     error
	openUntil time.Time
	since     time.Time
	bo        *backoff.ExponentialBackOff
	now       func() time.Time
	log       zerolog.Logger
}

func newBreaker(initial, maxInterval time.Duration, now func() time.Time, log zerolog.Logger) *breaker {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(initial, maxInterval)),
		backoff.WithMaxInterval(maxInterval),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0))
	return &breaker{bo: bo, now: now, log: log}
}

// PauseState says whether sending is paused and why.
type PauseState struct {
	Paused bool
	// Configuration is true when the pause is for a configuration problem (the
	// process then reports not ready); false for an outage.
	Configuration bool
	Cause         error
	Since         time.Time
	NextProbeAt   time.Time
	// Halted is true when sending stopped for good (a coalesce failure): no probe,
	// only a restart after the fix sends again.
	Halted bool
}

func (b *breaker) state() PauseState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return PauseState{}
	}
	return PauseState{Paused: true, Configuration: b.class == servicenow.ClassConfiguration,
		Cause: b.cause, Since: b.since, NextProbeAt: b.openUntil, Halted: b.halted}
}

// record takes the outcome of one import request, sent at started.
func (b *breaker) record(err error, started time.Time) {
	class := servicenow.ErrorClass(err)
	if errors.Is(err, context.Canceled) {
		return // our own shutdown says nothing about ServiceNow
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.halted {
		return // only a restart (after the fix) ends a halt
	}
	if b.open && class != servicenow.ClassSuccess && class != servicenow.ClassPermanent && started.Before(b.since) {
		// A post that was already in flight when sending paused failed like the
		// ones that paused it: not a probe, so it does not move the next probe.
		return
	}
	switch class {
	case servicenow.ClassSuccess, servicenow.ClassPermanent:
		// ServiceNow answered and judged the item: it is up and set up.
		if b.open {
			b.log.Info().Dur("paused_for", b.now().Sub(b.since).Round(time.Second)).Msg("ServiceNow accepts items again; sending resumed")
		}
		b.open, b.failures, b.cause = false, 0, nil
		b.bo.Reset()
		return
	case servicenow.ClassTransient:
		b.failures++
		if !b.open && b.failures < tripAfter {
			return
		}
	}
	wasOpen := b.open
	interval := b.bo.NextBackOff()
	var se *servicenow.Error
	if errors.As(err, &se) && se.RetryAfter > interval {
		interval = se.RetryAfter
	}
	now := b.now()
	b.open, b.class, b.cause, b.openUntil = true, class, err, now.Add(interval)
	if !wasOpen {
		b.since = now
	}
	ev := b.log.Warn()
	if class == servicenow.ClassConfiguration {
		ev = b.log.Error()
		if se != nil && se.Fix != "" {
			ev = ev.Str("fix", se.Fix)
		}
	}
	msg := "ServiceNow still failing; sending stays paused"
	if !wasOpen {
		msg = "sending paused: ServiceNow is down"
		if class == servicenow.ClassConfiguration {
			msg = "sending paused: ServiceNow refuses the integration's configuration"
		}
	}
	ev.Err(err).Str("class", class.String()).Time("next_probe_at", b.openUntil).Msg(msg)
}

// halt stops all sending for good: a probe would risk the very damage that caused
// it (a coalesce failure makes every re-post a new incident). Only a new process,
// started after the fix, sends again.
func (b *breaker) halt(cause error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.halted {
		return
	}
	now := b.now()
	if !b.open {
		b.since = now
	}
	b.open, b.halted, b.class, b.cause, b.openUntil = true, true, servicenow.ClassConfiguration, cause, time.Time{}
	if b.shared != nil {
		b.shared.set(cause)
	}
	ev := b.log.Error().Err(cause)
	var se *servicenow.Error
	if errors.As(cause, &se) && se.Fix != "" {
		ev = ev.Str("fix", se.Fix)
	}
	ev.Msg("sending halted: ServiceNow's configuration makes every re-post a new incident; fix it and restart")
}

// admit blocks while the breaker is open and returns how many messages the fetch
// loop may take: want when closed, 1 (a probe) once the open interval has passed.
func (b *breaker) admit(ctx context.Context, want int) (int, error) {
	for {
		b.mu.Lock()
		open, halted, until := b.open, b.halted, b.openUntil
		b.mu.Unlock()
		if !open {
			return want, nil
		}
		if halted {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		wait := until.Sub(b.now())
		if wait <= 0 {
			return 1, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

// sends reports whether a post may go out: any while closed, only a probe while
// open, none once halted.
func (b *breaker) sends(probe bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.open || probe && !b.halted
}

// isHalted reports whether sending stopped for good.
func (b *breaker) isHalted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.halted
}

func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}
