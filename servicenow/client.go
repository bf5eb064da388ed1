package servicenow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/remote"
)

// DefaultEarlyExpiry is how long before its expiry a token is renewed.
const DefaultEarlyExpiry = time.Minute

// maxResponseBody bounds what is read of a response.
const maxResponseBody = 16 << 20

// Operations, as named in [Error.Op].
const (
	OpAuthenticate  = "authenticate"
	OpImport        = "import"
	OpFindIncidents = "find incidents"
	OpFieldLengths  = "read field lengths"
	OpProbe         = "probe"
)

// MsgHibernating is the message of the error for a hibernating instance.
const MsgHibernating = "instance is hibernating; wake it from the developer portal (https://developer.servicenow.com)"

// Client talks to one ServiceNow instance. Create it with [New]; it is safe
// for concurrent use.
type Client struct {
	cfg  Config
	log  zerolog.Logger
	hc   *http.Client
	now  func() time.Time
	red  *remote.Redactor
	auth *authenticator
	gate *gate
}

// Option configures a [Client].
type Option func(*options)

type options struct {
	hc          *http.Client
	now         func() time.Time
	earlyExpiry time.Duration
}

// maxIdleConnsPerHost bounds the kept-alive connections to the instance; above the
// largest sensible consumer.concurrency.
const maxIdleConnsPerHost = 64

// WithHTTPClient makes the client use hc (its transport, TLS settings,
// proxies). The client works on a copy that does not follow redirects.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithClock sets the clock by which tokens expire (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithEarlyExpiry sets how long before its expiry a token is renewed
// (default [DefaultEarlyExpiry]).
func WithEarlyExpiry(d time.Duration) Option { return func(o *options) { o.earlyExpiry = d } }

// New validates cfg (see [Config.Validate]) and returns a client. It does
// not contact ServiceNow; call [Client.Authenticate] for that.
func New(cfg Config, log zerolog.Logger, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{now: time.Now, earlyExpiry: DefaultEarlyExpiry}
	for _, opt := range opts {
		opt(&o)
	}
	var hc http.Client
	if o.hc != nil {
		hc = *o.hc
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	log = log.With().Str("component", "servicenow").Logger()
	red := newRedactor(cfg)
	g := &gate{log: log, red: red}
	base := hc.Transport
	if base == nil {
		// The default keeps 2 idle connections per host: with more posts in
		// flight most would open (and TLS-handshake) a new connection.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = maxIdleConnsPerHost
		base = t
	}
	hc.Transport = &gateTransport{base: base, gate: g}

	c := &Client{
		cfg:  cfg,
		log:  log,
		hc:   &hc,
		now:  o.now,
		red:  red,
		gate: g,
	}
	c.auth = newAuthenticator(c, o.earlyExpiry)
	return c, nil
}

// InstanceURL returns the instance's base URL, without a trailing slash.
func (c *Client) InstanceURL() string { return c.cfg.InstanceURL }

// ImportTable returns the staging table records are posted to.
func (c *Client) ImportTable() string { return c.cfg.ImportTable }

// Authenticate obtains a new token now, whether or not one is held. It is
// used at start-up and by doctor to prove the credentials.
func (c *Client) Authenticate(ctx context.Context) error {
	c.auth.drop()
	_, err := c.auth.token(ctx)
	return err
}

// HasToken reports whether the client holds an unexpired token.
func (c *Client) HasToken() bool {
	_, ok := c.auth.current()
	return ok
}

// response is what the client keeps of an HTTP response.
type response struct {
	status      int
	header      http.Header
	contentType string
	body        []byte
}

// do sends an API request with a token. It waits while a 429 pauses the
// client. On 401 it drops the token, authenticates again and retries once.
// It returns an *Error only for failures without a response (network,
// authentication); the caller classifies the response.
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, body []byte) (*response, error) {
	u := c.cfg.InstanceURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	for attempt := 1; ; attempt++ {
		if err := c.gate.wait(ctx); err != nil {
			return nil, c.networkError(op, err)
		}
		tok, err := c.auth.token(ctx)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		resp, err := c.send(ctx, method, u, body, tok)
		if isPaused(err) { // a 429 closed the gate as this request passed it
			attempt--
			continue
		}
		if err != nil {
			c.log.Debug().Str("op", op).Str("method", method).Str("path", path).
				Dur("duration", time.Since(start)).Str("error", c.red.Redact(err.Error())).Msg("request failed")
			return nil, c.networkError(op, err)
		}
		c.log.Debug().Str("op", op).Str("method", method).Str("path", path).Int("status", resp.status).
			Dur("duration", time.Since(start)).Msg("request")
		if resp.status == http.StatusUnauthorized && attempt == 1 {
			c.log.Info().Str("op", op).Msg("ServiceNow refused the token; authenticating again")
			c.auth.invalidate(tok)
			continue
		}
		return resp, nil
	}
}

func (c *Client) send(ctx context.Context, method, u string, body []byte, token string) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ionixsnow")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, err
	}
	return &response{
		status:      resp.StatusCode,
		header:      resp.Header,
		contentType: resp.Header.Get("Content-Type"),
		body:        b,
	}, nil
}

// networkError is a failure without a response: transient.
func (c *Client) networkError(op string, err error) *Error {
	msg, cause := c.red.RedactErr(err, maxJSONMessage)
	return &Error{Class: ClassTransient, Op: op, Message: msg, Err: cause}
}

// responseError builds the error of a failed response of class class.
func (c *Client) responseError(op string, resp *response, class Class) *Error {
	e := &Error{
		Class:      class,
		Op:         op,
		StatusCode: resp.status,
		Message:    serverMessage(resp, c.red),
		RetryAfter: remote.RetryAfter(resp.header, c.now()),
	}
	if class == ClassConfiguration {
		e.Fix = fixFor(op, resp, e.Message, c.red)
	}
	return e
}

// fixFor names the setup step that fixes a configuration problem; msg is
// what the response says (see serverMessage).
func fixFor(op string, resp *response, msg string, red *remote.Redactor) string {
	switch {
	case resp.status >= 300 && resp.status <= 399:
		if loc := resp.header.Get("Location"); loc != "" {
			if u, err := url.Parse(red.Redact(loc)); err == nil {
				return fixRedirect + " to " + red.RedactClip(u.Redacted(), maxHeader)
			}
		}
		return fixRedirect
	case resp.status == http.StatusUnauthorized:
		return fixUnauthorized
	case resp.status == http.StatusForbidden && (op == OpImport || op == OpProbe):
		switch {
		case strings.Contains(msg, "ACL Exception"):
			return fixImportACL
		case strings.Contains(msg, "User Not Authorized"), strings.Contains(msg, "API level ACL"):
			return fixImportRoles
		}
		return fixImportForbidden
	case resp.status == http.StatusForbidden:
		return fixReadForbidden
	case resp.status == http.StatusNotFound && (op == OpImport || op == OpProbe):
		return fixImportTable
	}
	return fixURL
}

// errorBody is ServiceNow's REST error body.
type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Detail  any    `json:"detail"`
	} `json:"error"`
	Status string `json:"status"`
}

// serverMessage is what a response says went wrong, for an error message:
// redacted, then bounded.
func serverMessage(resp *response, red *remote.Redactor) string {
	if remote.IsHTML(resp.contentType) {
		head := red.RedactPrefix(resp.body, htmlHead)
		t := htmlTitle(head)
		if isHibernating(t, head) {
			return MsgHibernating
		}
		msg := "HTML page instead of JSON (instance hibernating, or not a ServiceNow API URL)"
		if t != "" {
			msg += ": " + t
		}
		return msg
	}
	var eb errorBody
	if json.Unmarshal(resp.body, &eb) == nil && eb.Error.Message != "" {
		msg := eb.Error.Message
		if d := fmt.Sprint(eb.Error.Detail); eb.Error.Detail != nil && d != "" && d != msg {
			msg += ": " + d
		}
		return red.RedactClip(msg, maxJSONMessage)
	}
	// The prefix leaves room for leading white space; it is redacted as it
	// stands in the whole body, and only then cut.
	if s := strings.TrimSpace(red.RedactPrefix(resp.body, htmlHead)); s != "" {
		return remote.Clip(s, maxTextMessage)
	}
	return http.StatusText(resp.status)
}

// isHibernating reports whether the head of an HTML page is the page of a
// hibernating instance.
func isHibernating(title string, head string) bool {
	if strings.Contains(strings.ToLower(title), "hibernat") {
		return true
	}
	return title == "" && strings.Contains(strings.ToLower(head), "hibernating")
}

// htmlTitle returns the <title> of the (redacted) head of an HTML page,
// bounded.
func htmlTitle(head string) string { return remote.Clip(remote.HTMLTitle(head), maxTitle) }
