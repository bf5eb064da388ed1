package ionixapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ionix/ionixsnow/remote"
)

// Defaults of [Config].
const (
	DefaultBaseURL     = "https://api.portal.ionix.io"
	DefaultTimeout     = 30 * time.Second
	DefaultPageSize    = 100
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 30 * time.Second

	// DefaultMaxListItems sets the default of Config.MaxPages: enough pages
	// for this many items at Config.PageSize (1000 pages at the default page
	// size).
	DefaultMaxListItems = 100_000
	// DefaultListTimeout is the default of Config.ListTimeout.
	DefaultListTimeout = 10 * time.Minute
)

// initialBackoff is the first wait before a retry (capped at MaxBackoff).
const initialBackoff = 500 * time.Millisecond

// MaxRetryAfter is the longest Retry-After a page waits for; a server that
// asks for more ends the walk with [ErrUnavailable] and Error.RetryAfter.
const MaxRetryAfter = 5 * time.Minute

// Config is the connection to the IONIX API (the ionix section of the
// configuration, SPEC §7).
type Config struct {
	// BaseURL is ionix.api_url, such as https://api.portal.ionix.io. Plain
	// http is accepted only for loopback hosts (the token is a secret). A
	// path prefix is allowed; a trailing slash is ignored.
	BaseURL string
	Token   string // ionix.token: the API token, sent as a Bearer token
	Account string // ionix.account: the account name, sent as X-Account-Name

	Timeout     time.Duration // per request; default 30s
	PageSize    int           // limit asked for; default 100 (the server may cap it)
	MaxAttempts int           // attempts per page, the first included; default 5
	MaxBackoff  time.Duration // cap of the wait between attempts; default 30s

	// MaxPages caps the pages one walk of a list ([Client.Each]) reads, so
	// that a server serving endless distinct "next" links cannot hold the
	// walk forever; beyond it the walk ends with [ErrLimit]. Default:
	// DefaultMaxListItems / PageSize, rounded up (1000 pages at the default
	// page size). A server that caps the page size below PageSize reaches
	// it with fewer items.
	MaxPages int
	// ListTimeout caps the time of one walk of a list: requests, retries,
	// their waits and the caller's function; beyond it the walk ends with
	// [ErrLimit]. Default DefaultListTimeout (10m).
	ListTimeout time.Duration

	// HTTPClient, when set, supplies the transport (TLS, proxies). The
	// client works on a copy that does not follow redirects; its Timeout,
	// if any, applies on top of Config.Timeout.
	HTTPClient *http.Client
}

// FieldError is one problem with one configuration key. It never holds the
// value of a secret.
type FieldError struct {
	Key     string // e.g. "ionix.api_url"
	Problem string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Problem }

// Validate reports every problem at once (joined with [errors.Join]), each
// an [*FieldError] naming its key; nil when the configuration is usable.
// The keys of the fields SPEC §7 does not name (timeout, page_size,
// max_attempts, max_backoff, max_pages, list_timeout) follow the same
// pattern.
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: "ionix." + key, Problem: fmt.Sprintf(format, args...)})
	}
	if p := checkBaseURL(c.BaseURL); p != "" {
		add("api_url", "%s", p)
	}
	switch {
	case c.Token == "":
		add("token", "is required (an IONIX API token)")
	case c.Token != strings.TrimSpace(c.Token):
		add("token", "has leading or trailing white space")
	case strings.ContainsAny(c.Token, "\r\n\x00"):
		add("token", "contains a control character")
	}
	switch {
	case strings.TrimSpace(c.Account) == "":
		add("account", "is required (the IONIX account name)")
	case strings.ContainsAny(c.Account, "\r\n\x00"):
		add("account", "contains a control character")
	}
	if c.Timeout < 0 {
		add("timeout", "must not be negative (got %s)", c.Timeout)
	}
	if c.PageSize < 0 {
		add("page_size", "must not be negative (got %d)", c.PageSize)
	}
	if c.MaxAttempts < 0 {
		add("max_attempts", "must not be negative (got %d)", c.MaxAttempts)
	}
	if c.MaxBackoff < 0 {
		add("max_backoff", "must not be negative (got %s)", c.MaxBackoff)
	}
	if c.MaxPages < 0 {
		add("max_pages", "must not be negative (got %d)", c.MaxPages)
	}
	if c.ListTimeout < 0 {
		add("list_timeout", "must not be negative (got %s)", c.ListTimeout)
	}
	return errors.Join(errs...)
}

// checkBaseURL returns what is wrong with the base URL, or "". It never
// echoes user information a URL might carry.
func checkBaseURL(raw string) string {
	if raw == "" {
		return "is required, such as " + DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "is not an absolute URL, such as " + DefaultBaseURL
	}
	if u.User != nil {
		return "must not contain user information; use ionix.token and ionix.account"
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !remote.IsLoopback(u.Hostname()) {
			return "must use https (plain http only for loopback hosts), got http://" + u.Host
		}
	default:
		return fmt.Sprintf("must use https, got scheme %q", u.Scheme)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "must not have a query or fragment"
	}
	return ""
}

// withDefaults fills in the defaults.
func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxPages == 0 {
		c.MaxPages = (DefaultMaxListItems + c.PageSize - 1) / c.PageSize
	}
	if c.ListTimeout == 0 {
		c.ListTimeout = DefaultListTimeout
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return c
}
