// Package remote holds what the clients of remote HTTP APIs (ServiceNow, the IONIX
// API) and the configuration read the same way: Retry-After, HTML answers, loopback
// hosts, and the one rule by which secrets are removed from what they report
// ([Redactor]).
package remote

import (
	"mime"
	"net"
	"net/http"
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

// HTMLTitle returns the <title> of an HTML page (or the head of one, already
// redacted), its white space collapsed; "" when there is none.
func HTMLTitle(page string) string {
	i := strings.Index(asciiLower(page), "<title>")
	if i < 0 {
		return ""
	}
	rest := page[i+len("<title>"):]
	j := strings.Index(asciiLower(rest), "</title>")
	if j < 0 {
		return ""
	}
	return strings.Join(strings.Fields(rest[:j]), " ")
}

// asciiLower lower-cases the ASCII letters of s only, so that byte offsets in
// the result are offsets in s.
func asciiLower(s string) string { return string(foldASCII(s)) }

// IsLoopback reports whether host is localhost, in 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
