package servicenow

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/remote"
)

// DefaultRateLimitPause is how long the client pauses after a 429 that
// says neither Retry-After nor X-RateLimit-Reset.
const DefaultRateLimitPause = 30 * time.Second

// maxRateLimitReset bounds a pause taken from X-RateLimit-Reset (ServiceNow
// counts per hour).
const maxRateLimitReset = time.Hour

// RateLimit is what ServiceNow last said about the rate limit rule that
// covers the client's requests (headers X-RateLimit-*; ServiceNow sends
// them on every request a rule covers).
type RateLimit struct {
	Limit  int       // X-RateLimit-Limit: requests allowed per window (an hour on ServiceNow)
	Reset  time.Time // X-RateLimit-Reset: when the window ends
	Rule   string    // X-RateLimit-Rule: sys_id of the rule
	SeenAt time.Time // when the client saw them
}

// gate holds every request of a client while ServiceNow's rate limit
// pauses it (after a 429, until Retry-After has passed). It runs on the
// wall clock: it waits on timers.
type gate struct {
	log zerolog.Logger
	red *remote.Redactor // for the rule header, when reported

	mu    sync.Mutex
	until time.Time
	rl    RateLimit
}

// pausedUntil returns the end of the pause; zero when not paused.
func (g *gate) pausedUntil() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !time.Now().Before(g.until) {
		return time.Time{}
	}
	return g.until
}

// wait returns when the client is not paused, or ctx's error.
func (g *gate) wait(ctx context.Context) error {
	for {
		until := g.pausedUntil()
		if until.IsZero() {
			return ctx.Err()
		}
		t := time.NewTimer(time.Until(until))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// observe notes the rate-limit headers of a response and, on 429, pauses
// the client until Retry-After has passed (X-RateLimit-Reset, or
// DefaultRateLimitPause, when there is no Retry-After).
func (g *gate) observe(resp *http.Response) {
	now := time.Now()
	h := resp.Header
	var rl RateLimit
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit"))); err == nil {
		rl = RateLimit{Limit: n, Rule: h.Get("X-RateLimit-Rule"), SeenAt: now}
		if s, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil {
			rl.Reset = time.Unix(s, 0)
		}
	}
	var until time.Time
	if resp.StatusCode == http.StatusTooManyRequests {
		switch d := remote.RetryAfter(h, now); {
		case d > 0:
			until = now.Add(d)
		case rl.Reset.After(now) && rl.Reset.Sub(now) <= maxRateLimitReset:
			until = rl.Reset
		default:
			until = now.Add(DefaultRateLimitPause)
		}
	}
	g.mu.Lock()
	if rl.Limit != 0 {
		g.rl = rl
	}
	extended := until.After(g.until)
	if extended {
		g.until = until
	}
	g.mu.Unlock()
	if extended {
		g.log.Warn().Time("paused_until", until).Int("status", resp.StatusCode).
			Msg("ServiceNow rate limit reached: no request is sent before Retry-After has passed")
	}
}

// rateLimit returns the rate limit last seen, its rule header redacted.
func (g *gate) rateLimit() RateLimit {
	g.mu.Lock()
	rl := g.rl
	g.mu.Unlock()
	rl.Rule = g.red.RedactClip(rl.Rule, maxHeader)
	return rl
}

// pausedError is what the transport answers, without sending, to a request
// that passed the gate just before a 429 closed it.
type pausedError struct{ until time.Time }

func (e *pausedError) Error() string {
	return "not sent: paused by ServiceNow's rate limit until " + e.until.UTC().Format(time.RFC3339)
}

// htmlTokenError is a token endpoint answering 2xx with an HTML page
// (x/oauth2 would only say that the access token is missing). Its text
// repeats nothing of the page; grantError reports what the page says,
// redacted.
type htmlTokenError struct{ resp *response }

func (e *htmlTokenError) Error() string {
	return "token endpoint answered HTTP " + strconv.Itoa(e.resp.status) + " with an HTML page"
}

// gateTransport applies the gate to every request of the client, token
// requests included, and watches every response.
type gateTransport struct {
	base http.RoundTripper
	gate *gate
}

func (t *gateTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if until := t.gate.pausedUntil(); !until.IsZero() {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, &pausedError{until: until}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.gate.observe(resp)
	if strings.HasSuffix(req.URL.Path, "/oauth_token.do") && resp.StatusCode >= 200 && resp.StatusCode <= 299 &&
		remote.IsHTML(resp.Header.Get("Content-Type")) {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, &htmlTokenError{resp: &response{status: resp.StatusCode, header: resp.Header,
			contentType: resp.Header.Get("Content-Type"), body: b}}
	}
	return resp, nil
}

// PausedUntil returns when the pause that a 429 from ServiceNow imposed
// ends; zero when the client is not paused. While paused, the client sends
// nothing: every request (imports, reads, token requests) waits, honouring
// its context, until the pause has passed.
func (c *Client) PausedUntil() time.Time { return c.gate.pausedUntil() }

// RateLimit returns the X-RateLimit-* headers ServiceNow last sent; zero
// when it never sent them.
func (c *Client) RateLimit() RateLimit { return c.gate.rateLimit() }

// isPaused reports whether err is a request the transport held back.
func isPaused(err error) bool {
	var pe *pausedError
	return errors.As(err, &pe)
}
