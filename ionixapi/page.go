package ionixapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/ionix/ionixsnow/remote"
)

// page is one page of a list, as decodePage reads it.
type page struct {
	Count   int               // "count": items in the list
	Next    string            // "next": the next page's URL; "" when null or absent
	Results []json.RawMessage // "results": the items as sent
}

// errNotJSON marks an answer whose body is not JSON: transient (a
// maintenance page, a body cut short).
var errNotJSON = errors.New("answer is not JSON")

// decodePage reads a page {"count":N,"next":...,"previous":...,"results":[...]}.
// A body that is not JSON gives an error wrapping errNotJSON; JSON that is
// not a page (no results array, a count that is not a non-negative integer,
// a next that is not a string or null) gives another error. Each result is
// kept exactly as sent. What an error repeats of the body is redacted by red
// (nil: not redacted) before it is cut short. decodePage never panics.
func decodePage(body []byte, red *remote.Redactor) (page, error) {
	if !json.Valid(body) {
		return page{}, fmt.Errorf("%w%s", errNotJSON, describeNonJSON(body, red))
	}
	var raw struct {
		Count   json.RawMessage    `json:"count"`
		Next    json.RawMessage    `json:"next"`
		Results *[]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return page{}, errors.New("answer is not a page of action items: " + jsonProblem(err))
	}
	if raw.Results == nil {
		return page{}, errors.New(`answer is not a page of action items: no "results" array`)
	}
	var p page
	p.Results = *raw.Results
	count := string(bytes.TrimSpace(raw.Count))
	if count == "" || count == "null" {
		return page{}, errors.New(`answer is not a page of action items: no "count"`)
	}
	n, err := strconv.ParseInt(count, 10, 0)
	if err != nil || n < 0 {
		return page{}, fmt.Errorf(`answer is not a page of action items: "count" %s is not a non-negative integer`, red.RedactClip(count, maxValue))
	}
	p.Count = int(n)
	if next := bytes.TrimSpace(raw.Next); len(next) > 0 && !bytes.Equal(next, []byte("null")) {
		if err := json.Unmarshal(next, &p.Next); err != nil {
			return page{}, errors.New(`answer is not a page of action items: "next" is neither a URL string nor null`)
		}
	}
	return p, nil
}

// jsonProblem describes a decoding error without repeating the body.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "a JSON " + te.Value + " instead of an object"
		}
		return fmt.Sprintf("%q is a JSON %s", te.Field, te.Value)
	}
	return "invalid JSON"
}

// describeNonJSON names what a non-JSON body looks like: the title of an
// HTML page, the start of a text, or nothing for an empty body; redacted,
// then cut short.
func describeNonJSON(body []byte, red *remote.Redactor) string {
	s := red.RedactPrefix(body, bodyHead)
	if strings.TrimSpace(s) == "" {
		return " (empty body)"
	}
	if t := htmlTitle(s); t != "" {
		return " (HTML page: " + t + ")"
	}
	if lower := strings.ToLower(s); strings.Contains(lower, "<html") || strings.Contains(lower, "<!doctype html") {
		return " (HTML page)"
	}
	return ": " + strconv.Quote(remote.Clip(strings.Join(strings.Fields(s), " "), maxSnippet))
}

// htmlTitle returns the <title> of the (redacted) head of an HTML page, cut
// short, or "".
func htmlTitle(head string) string { return remote.Clip(remote.HTMLTitle(head), maxSnippet) }

// resolveNext turns the "next" link of the page read from current into the
// URL to request. The link must name base's host (and no other explicit
// port); the URL returned keeps the link's path and query but base's scheme
// and host, so that nothing is ever sent anywhere else. What an error repeats
// of the link is redacted by red (nil: not redacted) before it is cut short.
func resolveNext(base, current *url.URL, next string, red *remote.Redactor) (*url.URL, error) {
	ref, err := url.Parse(strings.TrimSpace(next))
	if err != nil {
		return nil, errors.New(`"next" is not a URL`)
	}
	u := current.ResolveReference(ref)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf(`"next" link has scheme %q; only http and https are followed`, red.RedactClip(u.Scheme, maxValue))
	}
	if !strings.EqualFold(u.Hostname(), base.Hostname()) {
		return nil, fmt.Errorf(`"next" link leads to another host (%s, not %s); the token is only sent to ionix.api_url`,
			red.RedactClip(u.Hostname(), maxSnippet), base.Hostname())
	}
	if p := u.Port(); p != "" && p != defaultPort(u.Scheme) && p != port(base) {
		return nil, fmt.Errorf(`"next" link leads to another port (%s, not %s); the token is only sent to ionix.api_url`,
			red.RedactClip(p, maxValue), port(base))
	}
	u.Scheme, u.Host, u.User, u.Fragment, u.RawFragment = base.Scheme, base.Host, nil, "", ""
	return u, nil
}

// port returns the port of u, explicit or the default of its scheme.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return defaultPort(u.Scheme)
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// offsetOf returns the offset query parameter of u, or fallback when u has
// none (a cursor link) or it is not a number.
func offsetOf(u *url.URL, fallback int) int {
	if n, err := strconv.Atoi(u.Query().Get("offset")); err == nil && n >= 0 {
		return n
	}
	return fallback
}
