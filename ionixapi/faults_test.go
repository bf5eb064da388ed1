package ionixapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

// sentinels are the errors a failed request matches exactly one of.
var sentinels = []error{ionixapi.ErrUnauthorized, ionixapi.ErrNotFound, ionixapi.ErrRequest,
	ionixapi.ErrUnavailable, ionixapi.ErrProtocol}

// checkKind fails the test unless err is an *Error that matches want and no
// other sentinel.
func checkKind(t *testing.T, err error, want error) *ionixapi.Error {
	t.Helper()
	var e *ionixapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *ionixapi.Error", err, err)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(err, %v) = %v (err: %v)", s, got, err)
		}
	}
	return e
}

// retryLogs counts the warn entries of retries and checks their fields.
func retryLogs(t *testing.T, logs string) int {
	t.Helper()
	n := 0
	for line := range strings.Lines(logs) {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if entry["message"] != "IONIX API request failed; retrying" {
			continue
		}
		n++
		if entry["level"] != "warn" {
			t.Errorf("retry logged at %v", entry["level"])
		}
		for _, k := range []string{"offset", "wait", "attempt", "list", "error"} {
			if _, ok := entry[k]; !ok {
				t.Errorf("retry log without %q: %s", k, line)
			}
		}
	}
	return n
}

func TestRetriesThenSuccess(t *testing.T) {
	type fault struct {
		status int // 0: html
		drop   bool
	}
	for _, tt := range []struct {
		name   string
		faults []fault
	}{
		{name: "503", faults: []fault{{status: 503}, {status: 503}}},
		{name: "5xx mix", faults: []fault{{status: 500}, {status: 502}, {status: 504}}},
		{name: "429 without Retry-After", faults: []fault{{status: 429}}},
		{name: "408", faults: []fault{{status: 408}}},
		{name: "html maintenance page", faults: []fault{{status: 0}, {status: 0}}},
		{name: "connection dropped", faults: []fault{{drop: true}, {drop: true}}},
		{name: "everything", faults: []fault{{drop: true}, {status: 0}, {status: 503}, {status: 429}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, ionixsim.Options{RetryAfter: -1})
			want := items(25)
			e.sim.SetOpen(want...)
			inject := func() {
				for _, f := range tt.faults {
					switch {
					case f.drop:
						e.sim.DropNext(1)
					case f.status == 0:
						e.sim.ServeHTMLNext(1)
					default:
						e.sim.FailNext(1, f.status)
					}
				}
			}
			inject() // on the first page
			cfg := e.config()
			cfg.PageSize = 10
			// net/http silently repeats a GET once when a kept-alive
			// connection closes unanswered; new connections make every
			// dropped request a retry of the client's own.
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.DisableKeepAlives = true
			cfg.HTTPClient = &http.Client{Transport: tr}
			var got []json.RawMessage
			st, err := e.client(cfg).Each(t.Context(), ionixapi.Open, func(item json.RawMessage) error {
				got = append(got, item)
				if len(got) == 10 {
					inject() // and on the second
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sameItems(t, got, want)
			n := len(tt.faults)
			if want := (ionixapi.Stats{Pages: 3, Items: 25, Retries: 2 * n}); st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			reqs := e.sim.Requests()
			if len(reqs) != 3+2*n {
				t.Fatalf("%d requests, want %d: %v", len(reqs), 3+2*n, statuses(reqs))
			}
			var wantOffsets []string
			for range n + 1 {
				wantOffsets = append(wantOffsets, "0/10")
			}
			for range n + 1 {
				wantOffsets = append(wantOffsets, "10/10")
			}
			wantOffsets = append(wantOffsets, "20/10")
			if o := offsets(reqs); !slices.Equal(o, wantOffsets) {
				t.Errorf("requests %v, want %v", o, wantOffsets)
			}
			if got := retryLogs(t, e.logs.String()); got != 2*n {
				t.Errorf("%d retries logged, want %d", got, 2*n)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, ionixsim.Options{RetryAfter: time.Second})
	e.sim.SetOpen(items(3)...)
	e.sim.FailNext(1, http.StatusTooManyRequests)
	cfg := e.config() // MaxBackoff 5ms: only Retry-After can make the wait longer
	_, st, err := collect(t, e.client(cfg), ionixapi.Open)
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries != 1 {
		t.Errorf("stats %+v", st)
	}
	reqs := e.sim.Requests()
	if len(reqs) != 2 || reqs[0].Status != http.StatusTooManyRequests {
		t.Fatalf("requests %v", statuses(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retried after %s, before Retry-After (1s)", gap)
	}
	if logs := e.logs.String(); !strings.Contains(logs, `"retry_after":1000`) || !strings.Contains(logs, `"wait":1000`) {
		t.Errorf("retry log does not show the Retry-After wait: %s", logs)
	}
}

func TestRetryAfterBeyondMax(t *testing.T) {
	e := newEnv(t, ionixsim.Options{RetryAfter: ionixapi.MaxRetryAfter + time.Minute})
	e.sim.SetOpen(items(3)...)
	e.sim.FailNext(1, http.StatusTooManyRequests)
	_, st, err := collect(t, e.client(e.config()), ionixapi.Open)
	ae := checkKind(t, err, ionixapi.ErrUnavailable)
	if ae.RetryAfter != ionixapi.MaxRetryAfter+time.Minute || ae.StatusCode != 429 || ae.Attempts != 1 {
		t.Errorf("error %+v", ae)
	}
	if n := len(e.sim.Requests()); n != 1 || st.Retries != 0 {
		t.Errorf("%d requests, stats %+v; want one request", n, st)
	}
}

func TestRetriesExhausted(t *testing.T) {
	for _, tt := range []struct {
		name    string
		inject  func(*ionixsim.Server)
		status  int
		message string
	}{
		{name: "503", inject: func(s *ionixsim.Server) { s.FailNext(10, 503) }, status: 503, message: "Service Unavailable"},
		{name: "html", inject: func(s *ionixsim.Server) { s.ServeHTMLNext(10) }, status: 200, message: "HTML page instead of JSON: IONIX - Scheduled maintenance"},
		{name: "dropped", inject: func(s *ionixsim.Server) { s.DropNext(10) }, status: 0, message: "EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, ionixsim.Options{})
			e.sim.SetOpen(items(3)...)
			tt.inject(e.sim)
			cfg := e.config()
			cfg.MaxAttempts = 3
			_, st, err := collect(t, e.client(cfg), ionixapi.Open)
			ae := checkKind(t, err, ionixapi.ErrUnavailable)
			if ae.Attempts != 3 || ae.StatusCode != tt.status || ae.List != ionixapi.Open || ae.Offset != 0 {
				t.Errorf("error %+v", ae)
			}
			if !strings.Contains(err.Error(), tt.message) || !strings.Contains(err.Error(), "(3 attempts)") {
				t.Errorf("error %q does not contain %q and the attempts", err, tt.message)
			}
			if n := len(e.sim.Requests()); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
			if st != (ionixapi.Stats{Retries: 2}) {
				t.Errorf("stats %+v", st)
			}
			if n := retryLogs(t, e.logs.String()); n != 2 {
				t.Errorf("%d retries logged, want 2", n)
			}
		})
	}
}

func TestPermanentFailures(t *testing.T) {
	for _, tt := range []struct {
		name    string
		change  func(*ionixapi.Config, *ionixsim.Server)
		kind    error
		status  int
		message string
		fix     string
	}{
		{name: "wrong token", change: func(c *ionixapi.Config, _ *ionixsim.Server) { c.Token = "another-token" },
			kind: ionixapi.ErrUnauthorized, status: 401, message: "Invalid token.", fix: "check ionix.token"},
		{name: "wrong account", change: func(c *ionixapi.Config, _ *ionixsim.Server) { c.Account = "other" },
			kind: ionixapi.ErrUnauthorized, status: 403, message: "You do not have permission", fix: "check ionix.account"},
		{name: "wrong api_url", change: func(c *ionixapi.Config, _ *ionixsim.Server) { c.BaseURL += "/portal" },
			kind: ionixapi.ErrNotFound, status: 404, message: "HTML page instead of JSON: Not Found", fix: "check ionix.api_url"},
		{name: "400", change: func(_ *ionixapi.Config, s *ionixsim.Server) { s.FailNext(1, 400) },
			kind: ionixapi.ErrRequest, status: 400, message: "Bad Request"},
		{name: "410", change: func(_ *ionixapi.Config, s *ionixsim.Server) { s.FailNext(1, 410) },
			kind: ionixapi.ErrRequest, status: 410, message: "Gone"},
		{name: "not a page", change: func(_ *ionixapi.Config, s *ionixsim.Server) { s.FailNext(1, 200) },
			kind: ionixapi.ErrProtocol, status: 200, message: `no "results" array`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, ionixsim.Options{})
			e.sim.SetOpen(items(3)...)
			cfg := e.config()
			tt.change(&cfg, e.sim)
			_, st, err := collect(t, e.client(cfg), ionixapi.Open)
			ae := checkKind(t, err, tt.kind)
			if ae.StatusCode != tt.status || ae.Attempts != 1 {
				t.Errorf("error %+v", ae)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if !strings.Contains(ae.Fix, tt.fix) || !strings.Contains(err.Error(), tt.fix) {
				t.Errorf("fix %q, want it to contain %q", ae.Fix, tt.fix)
			}
			if n := len(e.sim.Requests()); n != 1 {
				t.Errorf("%d requests, want 1 (no retries)", n)
			}
			if st != (ionixapi.Stats{}) {
				t.Errorf("stats %+v", st)
			}
			if n := retryLogs(t, e.logs.String()); n != 0 {
				t.Errorf("%d retries logged", n)
			}
		})
	}
}

// spy is a server that must not be contacted.
func spy(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "should not be here", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestRedirectNotFollowed(t *testing.T) {
	other, hits := spy(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	defer srv.Close()
	logs := &testkit.Buffer{}
	c := newClient(t, ionixapi.Config{BaseURL: srv.URL, Token: testToken, Account: testAccount}, logs)
	_, _, err := collect(t, c, ionixapi.Open)
	ae := checkKind(t, err, ionixapi.ErrRequest)
	if ae.StatusCode != 301 || !strings.Contains(ae.Fix, "set ionix.api_url to the URL it redirects to ("+other.URL) {
		t.Errorf("error %+v", ae)
	}
	if hits.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestNextToAnotherHostRefused(t *testing.T) {
	other, hits := spy(t)
	for _, base := range []string{other.URL, "http://evil.example.com", "https://127.0.0.2"} {
		t.Run(base, func(t *testing.T) {
			e := newEnv(t, ionixsim.Options{LinkBase: base})
			e.sim.SetOpen(items(15)...)
			cfg := e.config()
			cfg.PageSize = 10
			got, st, err := collect(t, e.client(cfg), ionixapi.Open)
			ae := checkKind(t, err, ionixapi.ErrProtocol)
			if !strings.Contains(ae.Message, "another") || ae.Offset != 0 {
				t.Errorf("error %+v", ae)
			}
			if len(got) != 10 || st.Pages != 1 {
				t.Errorf("%d items, stats %+v; want the first page only", len(got), st)
			}
			if n := len(e.sim.Requests()); n != 1 {
				t.Errorf("%d requests to the API", n)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests went to the other host", hits.Load())
	}
}

func TestHTTPNextLinkReadOverTLS(t *testing.T) {
	sim := ionixsim.New(ionixsim.Options{Token: testToken, Account: testAccount})
	srv := httptest.NewTLSServer(sim)
	defer srv.Close()
	// A DRF behind a TLS-terminating proxy writes http:// links.
	sim2 := ionixsim.New(ionixsim.Options{Token: testToken, Account: testAccount,
		LinkBase: "http://" + srv.Listener.Addr().String()})
	srv.Config.Handler = sim2
	want := items(5)
	sim2.SetOpen(want...)
	c := newClient(t, ionixapi.Config{BaseURL: srv.URL, Token: testToken, Account: testAccount,
		PageSize: 2, HTTPClient: srv.Client()}, &testkit.Buffer{})
	got, st, err := collect(t, c, ionixapi.Open)
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, got, want)
	if st.Pages != 3 {
		t.Errorf("stats %+v", st)
	}
	if o := offsets(sim2.Requests()); !slices.Equal(o, []string{"0/2", "2/2", "4/2"}) {
		t.Errorf("requests %v", o)
	}
}

// pageJSON writes a page of n items with the given count and next.
func pageJSON(w http.ResponseWriter, count int, next string, n int) {
	var results []string
	for i := range n {
		results = append(results, fmt.Sprintf(`{"id":"AI-%d"}`, i))
	}
	nx := "null"
	if next != "" {
		b, _ := json.Marshal(next)
		nx = string(b)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"count":%d,"next":%s,"previous":null,"results":[%s]}`, count, nx, strings.Join(results, ","))
}

func TestLoopingServerRefused(t *testing.T) {
	for _, tt := range []struct {
		name     string
		handler  func(srv **httptest.Server) http.HandlerFunc
		requests int
		problem  string
	}{
		{name: "next repeats", requests: 2, problem: "already read",
			handler: func(srv **httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					pageJSON(w, 100, (*srv).URL+r.URL.Path+"?limit=10&offset=10", 10)
				}
			}},
		{name: "next points to itself", requests: 1, problem: "already read",
			handler: func(srv **httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					pageJSON(w, 100, (*srv).URL+r.URL.RequestURI(), 10)
				}
			}},
		{name: "endless new links", requests: 4, problem: "more items (40 so far) than the list has (count 25)",
			handler: func(srv **httptest.Server) http.HandlerFunc {
				var n atomic.Int32
				return func(w http.ResponseWriter, r *http.Request) {
					pageJSON(w, 25, fmt.Sprintf("%s%s?limit=10&offset=%d", (*srv).URL, r.URL.Path, 10*n.Add(1)), 10)
				}
			}},
		{name: "pages larger than asked", requests: 3, problem: "more items",
			handler: func(srv **httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					pageJSON(w, 50, (*srv).URL+r.URL.Path+"?offset="+r.URL.Query().Get("offset")+"0", 50)
				}
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			var reqs atomic.Int32
			h := tt.handler(&srv)
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs.Add(1)
				h(w, r)
			}))
			defer srv.Close()
			c := newClient(t, ionixapi.Config{BaseURL: srv.URL, Token: testToken, Account: testAccount, PageSize: 10}, &testkit.Buffer{})
			_, _, err := collect(t, c, ionixapi.Open)
			ae := checkKind(t, err, ionixapi.ErrProtocol)
			if !strings.Contains(ae.Message, tt.problem) {
				t.Errorf("message %q, want %q", ae.Message, tt.problem)
			}
			if n := int(reqs.Load()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}
}

func TestOffsetsBoundedWhenServerIgnoresOffset(t *testing.T) {
	var reqs atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		pageJSON(w, 25, "", 10) // always the first page, no links
	}))
	defer srv.Close()
	c := newClient(t, ionixapi.Config{BaseURL: srv.URL, Token: testToken, Account: testAccount, PageSize: 10}, &testkit.Buffer{})
	_, st, err := collect(t, c, ionixapi.Open)
	if err != nil {
		t.Fatal(err)
	}
	if n := reqs.Load(); n != 3 || st.Items != 30 {
		t.Errorf("%d requests, stats %+v", n, st)
	}
}

func TestRequestTimeout(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetOpen(items(3)...)
	e.sim.SetLatency(time.Second)
	cfg := e.config()
	cfg.Timeout = 30 * time.Millisecond
	cfg.MaxAttempts = 2
	start := time.Now()
	_, st, err := collect(t, e.client(cfg), ionixapi.Open)
	ae := checkKind(t, err, ionixapi.ErrUnavailable)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not match context.DeadlineExceeded", err)
	}
	if ae.Attempts != 2 || st.Retries != 1 {
		t.Errorf("error %+v, stats %+v", ae, st)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("took %s: the per-request timeout did not apply", d)
	}
}

// cancelOnWarn cancels a context at the first warn entry.
type cancelOnWarn struct{ cancel context.CancelFunc }

func (h cancelOnWarn) Run(_ *zerolog.Event, level zerolog.Level, _ string) {
	if level == zerolog.WarnLevel {
		h.cancel()
	}
}

func TestContextCancelled(t *testing.T) {
	t.Run("during backoff", func(t *testing.T) {
		e := newEnv(t, ionixsim.Options{RetryAfter: time.Minute}) // the first wait is a minute
		e.sim.SetOpen(items(3)...)
		e.sim.FailNext(5, http.StatusTooManyRequests)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c, err := ionixapi.New(e.config(), zerolog.New(e.logs).Hook(cancelOnWarn{cancel}))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		st, err := c.Each(ctx, ionixapi.Open, func(json.RawMessage) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Errorf("cancellation matches %v", s)
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("returned after %s: the backoff wait ignored the context", d)
		}
		if n := len(e.sim.Requests()); n != 1 || st.Retries != 0 {
			t.Errorf("%d requests, stats %+v", n, st)
		}
	})
	t.Run("before", func(t *testing.T) {
		e := newEnv(t, ionixsim.Options{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := e.client(e.config()).Each(ctx, ionixapi.Open, func(json.RawMessage) error { return nil })
		if !errors.Is(err, context.Canceled) || errors.Is(err, ionixapi.ErrUnavailable) {
			t.Fatalf("error %v, want context.Canceled only", err)
		}
	})
}
