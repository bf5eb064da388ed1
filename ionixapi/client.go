package ionixapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/remote"
)

// List names one action-item list of the API.
type List string

// The lists. SPEC §2 names only the open list; the closed list is assumed to
// mirror it (see the package documentation).
const (
	Open   List = "open"
	Closed List = "closed"
)

// Path returns the list's path below the base URL, with its trailing slash
// (Django redirects a path without it).
func (l List) Path() string { return "/api/v1/remediation/action-items/" + string(l) + "/" }

func (l List) valid() bool { return l == Open || l == Closed }

// Stats tell what one walk of a list did.
type Stats struct {
	Pages   int // pages read
	Items   int // items handed to the function
	Retries int // requests repeated after a transient failure
}

// Client reads the IONIX API. Create it with [New]; it is safe for
// concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	hc   *http.Client
	log  zerolog.Logger
	red  *remote.Redactor
}

// New validates cfg (see [Config.Validate]) and returns a client. It does
// not contact the API.
func New(cfg Config, log zerolog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	base, err := url.Parse(cfg.BaseURL)
	if err != nil { // Validate parsed it already
		return nil, fmt.Errorf("ionix.api_url: %w", err)
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.HTTPClient = nil
	return &Client{
		cfg:  cfg,
		base: base,
		hc:   &hc,
		log:  log.With().Str("component", "ionixapi").Logger(),
		red:  newRedactor(cfg.Token),
	}, nil
}

// BaseURL returns the API's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.cfg.BaseURL }

// pageURL is the URL of the page of list at offset, asked by offset.
func (c *Client) pageURL(list List, offset int) *url.URL {
	u := *c.base
	u.Path = c.base.Path + list.Path()
	u.RawPath = ""
	u.RawQuery = url.Values{
		"limit":  {strconv.Itoa(c.cfg.PageSize)},
		"offset": {strconv.Itoa(offset)},
	}.Encode()
	return &u
}

// Each reads every page of list in order and calls fn with each element of
// "results", the raw JSON exactly as the API sent it (a slice of its own,
// which fn may keep).
//
// Each follows "next" links (on the base URL's host only) and otherwise
// offsets; see the package documentation for paging, retries and the
// errors. It reads at most Config.MaxPages pages within Config.ListTimeout
// ([ErrLimit] beyond). It stops at the first error fn returns and returns it
// wrapped. The Stats count what was done, also when an error ends the walk.
func (c *Client) Each(ctx context.Context, list List, fn func(item json.RawMessage) error) (Stats, error) {
	var st Stats
	if !list.valid() {
		return st, fmt.Errorf("ionixapi: unknown list %q (want %q or %q)", list, Open, Closed)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.ListTimeout, errListTimeout)
	defer cancel()
	u := c.pageURL(list, 0)
	visited := map[string]bool{}
	maxCount := 0
	for {
		offset := offsetOf(u, st.Items)
		if st.Pages >= c.cfg.MaxPages {
			return st, c.limitError(list, offset, fmt.Sprintf(
				"read %d pages (%d items) and the list goes on: the cap is ionix.max_pages (%d) "+
					"(a server that serves endless next links, or a list larger than the cap)",
				st.Pages, st.Items, c.cfg.MaxPages))
		}
		if visited[u.String()] {
			return st, c.protocolError(list, offset, `"next" leads to a page already read (the server loops)`)
		}
		visited[u.String()] = true

		p, retries, err := c.fetch(ctx, list, u, offset)
		st.Retries += retries
		if err != nil {
			return st, err
		}
		st.Pages++
		maxCount = max(maxCount, p.Count)
		// Items may be added while the list is read, which raises count and
		// may repeat an item at a page boundary; one page beyond the
		// largest count covers that, anything more is a server that loops.
		if margin := max(c.cfg.PageSize, len(p.Results)); st.Items+len(p.Results) > maxCount+margin {
			return st, c.protocolError(list, offset, fmt.Sprintf(
				"more items (%d so far) than the list has (count %d): the server loops", st.Items+len(p.Results), maxCount))
		}
		for _, item := range p.Results {
			st.Items++
			if err := fn(item); err != nil {
				return st, fmt.Errorf("ionixapi: %s list, item %d (offset %d): %w", list, st.Items, offset, err)
			}
		}
		if len(p.Results) == 0 {
			c.done(list, st)
			return st, nil
		}
		if p.Next != "" {
			next, err := resolveNext(c.base, u, p.Next, c.red)
			if err != nil {
				return st, c.protocolError(list, offset, err.Error())
			}
			u = next
			continue
		}
		if st.Items >= p.Count {
			c.done(list, st)
			return st, nil
		}
		u = c.pageURL(list, st.Items)
	}
}

// done logs a complete walk.
func (c *Client) done(list List, st Stats) {
	c.log.Debug().Str("list", string(list)).Int("pages", st.Pages).Int("items", st.Items).
		Int("retries", st.Retries).Msg("IONIX API list read")
}

// errListTimeout is the cause of the end of a walk that took longer than
// Config.ListTimeout.
var errListTimeout = errors.New("list timeout")

// contextError is the error of a walk whose context ended: ErrLimit when it
// ran out of Config.ListTimeout, else the context's error (which Each's
// caller caused).
func (c *Client) contextError(ctx context.Context, list List, offset int) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, errListTimeout) {
		return c.limitError(list, offset, fmt.Sprintf(
			"reading the list took longer than ionix.list_timeout (%s) and it goes on", c.cfg.ListTimeout))
	}
	return fmt.Errorf("ionixapi: %s list at offset %d: %w", list, offset, cause)
}

// limitError is an ErrLimit at offset of list.
func (c *Client) limitError(list List, offset int, msg string) error {
	c.log.Warn().Str("list", string(list)).Int("offset", offset).Str("problem", msg).Msg("IONIX API list not read to its end")
	return &Error{Kind: ErrLimit, List: list, Offset: offset, Message: msg}
}

// protocolError is an ErrProtocol at offset of list.
func (c *Client) protocolError(list List, offset int, msg string) error {
	msg = c.red.Redact(msg)
	c.log.Warn().Str("list", string(list)).Int("offset", offset).Str("problem", msg).Msg("IONIX API answer not followed")
	return &Error{Kind: ErrProtocol, List: list, Offset: offset, Message: msg, Attempts: 1}
}
