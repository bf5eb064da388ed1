package ionixapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/ionix/ionixsnow/remote"
)

// maxResponseBody bounds what is read of an answer.
const maxResponseBody = 64 << 20

// answer is what the client keeps of an HTTP response.
type answer struct {
	status      int
	header      http.Header
	contentType string
	body        []byte
}

// fetch reads one page, retrying transient failures with backoff. It
// returns the page and how many times the request was repeated.
func (c *Client) fetch(ctx context.Context, list List, u *url.URL, offset int) (page, int, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(initialBackoff, c.cfg.MaxBackoff)),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(c.cfg.MaxBackoff),
		backoff.WithMaxElapsedTime(0))
	for attempt := 1; ; attempt++ {
		p, e := c.try(ctx, list, u, offset)
		if e == nil {
			return p, attempt - 1, nil
		}
		if ctx.Err() != nil {
			return page{}, attempt - 1, c.contextError(ctx, list, offset)
		}
		e.Attempts = attempt
		if e.Kind != ErrUnavailable || attempt >= c.cfg.MaxAttempts {
			return page{}, attempt - 1, e
		}
		if e.RetryAfter > MaxRetryAfter {
			c.log.Warn().Str("list", string(list)).Int("offset", offset).Int("status", e.StatusCode).
				Dur("retry_after", e.RetryAfter).Msg("IONIX API asks to retry later than the client waits; giving up on this page")
			return page{}, attempt - 1, e
		}
		wait := min(b.NextBackOff(), c.cfg.MaxBackoff)
		wait = max(wait, e.RetryAfter)
		ev := c.log.Warn().Str("list", string(list)).Int("offset", offset).Int("attempt", attempt).
			Int("max_attempts", c.cfg.MaxAttempts).Dur("wait", wait)
		if e.StatusCode != 0 {
			ev = ev.Int("status", e.StatusCode)
		}
		if e.RetryAfter > 0 {
			ev = ev.Dur("retry_after", e.RetryAfter)
		}
		ev.Str("error", e.Message).Msg("IONIX API request failed; retrying")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return page{}, attempt - 1, c.contextError(ctx, list, offset)
		case <-t.C:
		}
	}
}

// try makes one request for a page; it returns the page, or an *Error whose
// Kind is ErrUnavailable when the failure is transient.
func (c *Client) try(ctx context.Context, list List, u *url.URL, offset int) (page, *Error) {
	start := time.Now()
	a, err := c.send(ctx, u)
	if err != nil {
		msg, cause := c.red.RedactErr(err, maxErrorText)
		c.log.Debug().Str("list", string(list)).Int("offset", offset).Dur("duration", time.Since(start)).
			Str("error", msg).Msg("IONIX API request failed")
		return page{}, &Error{Kind: ErrUnavailable, List: list, Offset: offset, Message: msg, Err: cause}
	}
	c.log.Debug().Str("list", string(list)).Int("offset", offset).Int("status", a.status).
		Int("bytes", len(a.body)).Dur("duration", time.Since(start)).Msg("IONIX API request")

	cl := classify(a.status, a.contentType)
	if cl != classOK {
		return page{}, c.answerError(list, offset, a, cl)
	}
	if len(a.body) > maxResponseBody {
		return page{}, &Error{Kind: ErrProtocol, List: list, Offset: offset, StatusCode: a.status,
			Message: fmt.Sprintf("answer larger than %d MiB", maxResponseBody>>20)}
	}
	p, err := decodePage(a.body, c.red)
	if err != nil {
		kind := ErrProtocol
		if errors.Is(err, errNotJSON) {
			kind = ErrUnavailable
		}
		return page{}, &Error{Kind: kind, List: list, Offset: offset, StatusCode: a.status,
			Message: err.Error(), RetryAfter: remote.RetryAfter(a.header, time.Now())}
	}
	return p, nil
}

// send makes one GET request within the per-request timeout and reads the
// answer (at most one byte more than maxResponseBody).
func (c *Client) send(ctx context.Context, u *url.URL) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	req.Header.Set("X-Account-Name", c.cfg.Account)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ionixsnow")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, err
	}
	return &answer{
		status:      resp.StatusCode,
		header:      resp.Header,
		contentType: resp.Header.Get("Content-Type"),
		body:        body,
	}, nil
}

// answerError builds the error of an answer of failure class cl.
func (c *Client) answerError(list List, offset int, a *answer, cl class) *Error {
	e := &Error{
		Kind:       cl.kind(),
		List:       list,
		Offset:     offset,
		StatusCode: a.status,
		Message:    serverMessage(a, c.red),
		RetryAfter: remote.RetryAfter(a.header, time.Now()),
	}
	switch {
	case a.status == http.StatusUnauthorized:
		e.Fix = fixUnauthorized
	case a.status == http.StatusForbidden:
		e.Fix = fixForbidden
	case a.status == http.StatusNotFound:
		e.Fix = fixNotFound
	case a.status >= 300 && a.status <= 399:
		e.Fix = fixRedirect
		if loc, err := url.Parse(c.red.Redact(a.header.Get("Location"))); err == nil && loc.String() != "" {
			loc.User = nil
			e.Fix += " (" + c.red.RedactClip(loc.String(), maxTextMessage) + ")"
		}
	}
	return e
}

// serverMessage is what an answer says went wrong: DRF's {"detail": ...},
// the title of an HTML page, the start of a text, or the status text;
// redacted, then cut short.
func serverMessage(a *answer, red *remote.Redactor) string {
	if remote.IsHTML(a.contentType) {
		if t := htmlTitle(red.RedactPrefix(a.body, bodyHead)); t != "" {
			return "HTML page instead of JSON: " + t
		}
		return "HTML page instead of JSON"
	}
	var body struct {
		Detail  any    `json:"detail"`
		Message string `json:"message"`
		Error   any    `json:"error"`
	}
	if json.Unmarshal(a.body, &body) == nil {
		for _, v := range []any{body.Detail, body.Message, body.Error} {
			if s := strings.TrimSpace(fmt.Sprint(v)); v != nil && s != "" {
				return red.RedactClip(s, maxTextMessage)
			}
		}
	}
	if s := strings.Join(strings.Fields(red.RedactPrefix(a.body, bodyHead)), " "); s != "" {
		return remote.Clip(s, maxTextMessage)
	}
	return http.StatusText(a.status)
}
