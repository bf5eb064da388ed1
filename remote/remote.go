// Package remote holds what the clients of remote HTTP APIs (ServiceNow, the IONIX
// API) and the configuration read the same way: Retry-After, HTML answers, loopback
// hosts, and the forms a secret takes in text.
package remote

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter bounds a Retry-After in seconds (a day), so that no answer can make
// an overflowing wait.
const maxRetryAfter = 24 * time.Hour

// RetryAfter parses Retry-After (seconds or an HTTP date); 0 when absent, negative
// or in the past; at most a day.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// IsHTML reports whether a Content-Type is an HTML page.
func IsHTML(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return strings.Contains(strings.ToLower(contentType), "html")
	}
	return mt == "text/html" || mt == "application/xhtml+xml"
}

// IsLoopback reports whether host is localhost, in 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SecretForms returns a secret as text may show it: as is, and query- or
// path-escaped (as a URL or a server echoing a request would show it); none for "".
func SecretForms(secret string) []string {
	if secret == "" {
		return nil
	}
	out := []string{secret}
	for _, f := range []string{url.QueryEscape(secret), url.PathEscape(secret)} {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
