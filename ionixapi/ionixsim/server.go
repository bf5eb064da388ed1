package ionixsim

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of [Options].
const (
	DefaultToken       = "ionix"
	DefaultAccount     = "acme"
	DefaultMaxPageSize = 100
	DefaultLimit       = 100 // limit when a request names none (DRF's PAGE_SIZE)
	DefaultRetryAfter  = time.Second
)

// The paths of the lists.
const (
	OpenPath   = "/api/v1/remediation/action-items/open/"
	ClosedPath = "/api/v1/remediation/action-items/closed/"
)

// NextStyle is how pages link to the next and previous page.
type NextStyle int

const (
	// NextAbsolute writes absolute next and previous URLs, as DRF does.
	NextAbsolute NextStyle = iota
	// NextNone writes null for both: clients must page by offset.
	NextNone
)

// Options configure a [Server]. The zero value expects token "ionix" and
// account "acme", serves at most 100 items a page and links pages.
type Options struct {
	Token   string // the Bearer token accepted; default "ionix"
	Account string // the X-Account-Name accepted; default "acme"

	// MaxPageSize caps limit (DRF's max_limit); default 100. It also caps
	// the default limit (100).
	MaxPageSize int

	NextStyle NextStyle

	// LinkBase is the scheme://host[:port] of next and previous links;
	// default the request's (http, or https over TLS, and its Host). Tests
	// set it to make links to another host, or http links behind TLS.
	LinkBase string

	// RetryAfter is sent with injected 429 answers, in whole seconds
	// (rounded up); default 1s, negative for no Retry-After.
	RetryAfter time.Duration
}

func (o Options) withDefaults() Options {
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.Account == "" {
		o.Account = DefaultAccount
	}
	if o.MaxPageSize <= 0 {
		o.MaxPageSize = DefaultMaxPageSize
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	o.LinkBase = strings.TrimRight(o.LinkBase, "/")
	return o
}

// Server is the emulated API. Create it with [New].
type Server struct {
	opt Options

	mu       sync.Mutex
	open     []entry // in list order
	closed   []entry
	faults   []fault // pending faults, first first
	latency  time.Duration
	requests []Request
}

// New returns a server with the given options (defaults filled in) and
// empty lists.
func New(o Options) *Server {
	return &Server{opt: o.withDefaults()}
}

// Options returns the options in effect (defaults filled in).
func (s *Server) Options() Options { return s.opt }

// ServeHTTP serves the API and records the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	sw := &statusWriter{ResponseWriter: w}
	var panicked bool
	// flush records the request once: when the handler ends, or before a
	// dropped connection is closed, so the log is complete by the time the
	// client sees the connection go.
	flush := sync.OnceFunc(func() {
		switch {
		case panicked || rec.Fault == faultDropped || rec.Fault == faultGone:
			rec.Status = 0
		case sw.status == 0:
			rec.Status = http.StatusOK
		default:
			rec.Status = sw.status
		}
		s.record(rec)
	})
	defer func() {
		p := recover()
		panicked = p != nil
		flush()
		if p != nil {
			panic(p)
		}
	}()

	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			rec.Fault = faultGone
			return
		}
	}

	var l list
	switch r.URL.Path {
	case OpenPath:
		l = openList
	case ClosedPath:
		l = closedList
	case strings.TrimSuffix(OpenPath, "/"), strings.TrimSuffix(ClosedPath, "/"):
		u := url.URL{Path: r.URL.Path + "/", RawQuery: r.URL.RawQuery}
		http.Redirect(sw, r, u.String(), http.StatusMovedPermanently)
		return
	default:
		sw.Header().Set("Content-Type", "text/html; charset=utf-8")
		sw.WriteHeader(http.StatusNotFound)
		_, _ = sw.Write([]byte(notFoundPage))
		return
	}
	if s.applyFault(sw, &rec, flush) {
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		sw.Header().Set("Allow", "GET, HEAD, OPTIONS")
		writeDetail(sw, http.StatusMethodNotAllowed, `Method "`+r.Method+`" not allowed.`)
		return
	}
	if !s.authorized(sw, r) {
		return
	}
	if !acceptsJSON(r.Header.Get("Accept")) {
		writeDetail(sw, http.StatusNotAcceptable, "Could not satisfy the request Accept header.")
		return
	}
	if r.Method == http.MethodOptions {
		writeJSON(sw, http.StatusOK, map[string]any{
			"name": "Action Item List", "description": "",
			"renders": []string{"application/json"}, "parses": []string{"application/json"},
		})
		return
	}
	s.servePage(sw, r, l)
}

// authorized checks the token and the account, answering 401 or 403.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
		writeDetail(w, http.StatusUnauthorized, "Authentication credentials were not provided.")
		return false
	}
	if strings.TrimSpace(token) != s.opt.Token {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
		writeDetail(w, http.StatusUnauthorized, "Invalid token.")
		return false
	}
	if r.Header.Get("X-Account-Name") != s.opt.Account {
		writeDetail(w, http.StatusForbidden, "You do not have permission to perform this action.")
		return false
	}
	return true
}

// acceptsJSON reports whether an Accept header allows application/json.
func acceptsJSON(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f <= 0 {
				continue
			}
		}
		switch mt {
		case "application/json", "application/*", "*/*":
			return true
		}
	}
	return false
}

// servePage writes the page of list that the request asks for.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request, l list) {
	q := r.URL.Query()
	limit := min(DefaultLimit, s.opt.MaxPageSize)
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		limit = min(n, s.opt.MaxPageSize)
	}
	offset := 0
	if n, err := strconv.Atoi(q.Get("offset")); err == nil && n >= 0 {
		offset = n
	}

	s.mu.Lock()
	entries := s.open
	if l == closedList {
		entries = s.closed
	}
	count := len(entries)
	var results []json.RawMessage
	if offset < count {
		for _, e := range entries[offset:min(count, offset+limit)] {
			results = append(results, e.raw)
		}
	}
	s.mu.Unlock()

	next, previous := "null", "null"
	if s.opt.NextStyle == NextAbsolute {
		if offset+limit < count {
			next = s.link(r, map[string]string{"limit": strconv.Itoa(limit), "offset": strconv.Itoa(offset + limit)})
		}
		switch {
		case offset <= 0:
		case offset-limit <= 0:
			previous = s.link(r, map[string]string{"limit": strconv.Itoa(limit), "offset": ""})
		default:
			previous = s.link(r, map[string]string{"limit": strconv.Itoa(limit), "offset": strconv.Itoa(offset - limit)})
		}
	}

	var b bytes.Buffer
	b.WriteString(`{"count":`)
	b.WriteString(strconv.Itoa(count))
	b.WriteString(`,"next":`)
	b.WriteString(next)
	b.WriteString(`,"previous":`)
	b.WriteString(previous)
	b.WriteString(`,"results":[`)
	for i, raw := range results {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(raw)
	}
	b.WriteString("]}")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Allow", "GET, HEAD, OPTIONS")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// link returns, as a JSON string, the request's absolute URL with the query
// parameters in set replaced (an empty value removes one), sorted by name.
func (s *Server) link(r *http.Request, set map[string]string) string {
	q := r.URL.Query()
	for k, v := range set {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	base := s.opt.LinkBase
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	u := base + r.URL.EscapedPath()
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	quoted, _ := json.Marshal(u) // a string always encodes
	return string(quoted)
}

// writeDetail writes DRF's error body {"detail": message}.
func writeDetail(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"detail": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Vary", "Accept")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// notFoundPage is Django's 404 page with DEBUG off.
const notFoundPage = `<!doctype html>
<html lang="en">
<head>
  <title>Not Found</title>
</head>
<body>
  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>
</body>
</html>
`

// statusWriter notes the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Hijack).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
