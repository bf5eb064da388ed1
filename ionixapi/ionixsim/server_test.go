package ionixsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

// env is the emulator behind an httptest server.
type env struct {
	t   *testing.T
	sim *ionixsim.Server
	srv *httptest.Server
}

func newEnv(t *testing.T, o ionixsim.Options) *env {
	t.Helper()
	sim := ionixsim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the given headers (nil: the default credentials
// and Accept: application/json).
func (e *env) do(method, pathQuery string, header map[string]string) reply {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+pathQuery, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if header == nil {
		header = map[string]string{"Authorization": "Bearer ionix", "X-Account-Name": "acme", "Accept": "application/json"}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// pageReply is a decoded page.
type pageReply struct {
	Count    int               `json:"count"`
	Next     *string           `json:"next"`
	Previous *string           `json:"previous"`
	Results  []json.RawMessage `json:"results"`
}

func (e *env) page(pathQuery string) pageReply {
	e.t.Helper()
	r := e.do(http.MethodGet, pathQuery, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", pathQuery, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("Content-Type %q", ct)
	}
	var p pageReply
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatalf("GET %s: %v: %s", pathQuery, err, r.body)
	}
	return p
}

func ids(t *testing.T, raws []json.RawMessage) []string {
	t.Helper()
	out := make([]string, len(raws))
	for i, raw := range raws {
		out[i] = ionixsim.ID(raw)
	}
	return out
}

func items(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = ionixsim.Item(fmt.Sprintf("AI-%d", i), fmt.Sprintf("Finding %d", i), "DNS", 5)
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

func TestPaging(t *testing.T) {
	e := newEnv(t, ionixsim.Options{MaxPageSize: 50})
	e.sim.SetOpen(items(120)...)
	base := e.srv.URL + ionixsim.OpenPath
	for _, tt := range []struct {
		query          string
		first, n       int
		next, previous string
	}{
		{query: "", first: 0, n: 50, next: base + "?limit=50&offset=50", previous: "null"},
		{query: "?limit=10", first: 0, n: 10, next: base + "?limit=10&offset=10", previous: "null"},
		{query: "?limit=10&offset=10", first: 10, n: 10, next: base + "?limit=10&offset=20", previous: base + "?limit=10"},
		{query: "?limit=10&offset=25", first: 25, n: 10, next: base + "?limit=10&offset=35", previous: base + "?limit=10&offset=15"},
		{query: "?limit=10&offset=110", first: 110, n: 10, next: "null", previous: base + "?limit=10&offset=100"},
		{query: "?limit=1000&offset=100", first: 100, n: 20, next: "null", previous: base + "?limit=50&offset=50"},
		{query: "?limit=10&offset=500", first: 0, n: 0, next: "null", previous: base + "?limit=10&offset=490"},
		{query: "?limit=0", first: 0, n: 50, next: base + "?limit=50&offset=50", previous: "null"},
		{query: "?limit=-3&offset=-1", first: 0, n: 50, next: base + "?limit=50&offset=50", previous: "null"},
		{query: "?limit=x&offset=y", first: 0, n: 50, next: base + "?limit=50&offset=50", previous: "null"},
		{query: "?offset=5&foo=bar&limit=5", first: 5, n: 5, next: base + "?foo=bar&limit=5&offset=10", previous: base + "?foo=bar&limit=5"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			p := e.page(ionixsim.OpenPath + tt.query)
			if p.Count != 120 {
				t.Errorf("count %d", p.Count)
			}
			var want []string
			for i := tt.first; i < tt.first+tt.n; i++ {
				want = append(want, fmt.Sprintf("AI-%d", i))
			}
			if got := ids(t, p.Results); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
				t.Errorf("results %v, want %v", got, want)
			}
			if str(p.Next) != tt.next || str(p.Previous) != tt.previous {
				t.Errorf("next %s, previous %s; want %s, %s", str(p.Next), str(p.Previous), tt.next, tt.previous)
			}
		})
	}
}

func TestPagingOptions(t *testing.T) {
	t.Run("default limit 100", func(t *testing.T) {
		e := newEnv(t, ionixsim.Options{MaxPageSize: 1000})
		e.sim.SetOpen(items(150)...)
		if p := e.page(ionixsim.OpenPath); len(p.Results) != 100 {
			t.Errorf("%d results", len(p.Results))
		}
		if p := e.page(ionixsim.OpenPath + "?limit=150"); len(p.Results) != 150 || p.Next != nil {
			t.Errorf("%d results, next %s", len(p.Results), str(p.Next))
		}
	})
	t.Run("no links", func(t *testing.T) {
		e := newEnv(t, ionixsim.Options{NextStyle: ionixsim.NextNone})
		e.sim.SetOpen(items(30)...)
		p := e.page(ionixsim.OpenPath + "?limit=10&offset=10")
		if len(p.Results) != 10 || p.Next != nil || p.Previous != nil || p.Count != 30 {
			t.Errorf("page %+v", p)
		}
	})
	t.Run("link base", func(t *testing.T) {
		e := newEnv(t, ionixsim.Options{LinkBase: "https://api.portal.ionix.io/"})
		e.sim.SetOpen(items(30)...)
		p := e.page(ionixsim.OpenPath + "?limit=10")
		if want := "https://api.portal.ionix.io" + ionixsim.OpenPath + "?limit=10&offset=10"; str(p.Next) != want {
			t.Errorf("next %s, want %s", str(p.Next), want)
		}
	})
	t.Run("https over TLS", func(t *testing.T) {
		sim := ionixsim.New(ionixsim.Options{})
		sim.SetOpen(items(3)...)
		srv := httptest.NewTLSServer(sim)
		defer srv.Close()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+ionixsim.OpenPath+"?limit=1", nil)
		req.Header.Set("Authorization", "Bearer ionix")
		req.Header.Set("X-Account-Name", "acme")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p pageReply
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		if want := srv.URL + ionixsim.OpenPath + "?limit=1&offset=1"; str(p.Next) != want {
			t.Errorf("next %s, want %s", str(p.Next), want)
		}
	})
	t.Run("raw bytes kept", func(t *testing.T) {
		e := newEnv(t, ionixsim.Options{})
		odd := json.RawMessage("{ \"id\" : \"X\",\n \"title\":\"caf\\u00e9\", \"n\": 1.50 }")
		e.sim.SetOpen(odd)
		r := e.do(http.MethodGet, ionixsim.OpenPath, nil)
		if !bytes.Contains(r.body, odd) {
			t.Errorf("page %s does not hold the item as given", r.body)
		}
	})
}

func TestAuth(t *testing.T) {
	e := newEnv(t, ionixsim.Options{Token: "secret", Account: "acme"})
	e.sim.SetOpen(items(1)...)
	for _, tt := range []struct {
		name   string
		header map[string]string
		status int
		detail string
	}{
		{name: "no header", header: map[string]string{"X-Account-Name": "acme"}, status: 401,
			detail: "Authentication credentials were not provided."},
		{name: "other scheme", header: map[string]string{"Authorization": "Token secret", "X-Account-Name": "acme"}, status: 401,
			detail: "Authentication credentials were not provided."},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer ", "X-Account-Name": "acme"}, status: 401,
			detail: "Authentication credentials were not provided."},
		{name: "wrong token", header: map[string]string{"Authorization": "Bearer nope", "X-Account-Name": "acme"}, status: 401,
			detail: "Invalid token."},
		{name: "no account", header: map[string]string{"Authorization": "Bearer secret"}, status: 403,
			detail: "You do not have permission to perform this action."},
		{name: "wrong account", header: map[string]string{"Authorization": "Bearer secret", "X-Account-Name": "other"}, status: 403,
			detail: "You do not have permission to perform this action."},
		{name: "not acceptable", header: map[string]string{"Authorization": "Bearer secret", "X-Account-Name": "acme", "Accept": "text/html"},
			status: 406, detail: "Could not satisfy the request Accept header."},
		{name: "json refused by q=0", header: map[string]string{"Authorization": "Bearer secret", "X-Account-Name": "acme", "Accept": "application/json;q=0"},
			status: 406, detail: "Could not satisfy the request Accept header."},
		{name: "ok", header: map[string]string{"Authorization": "bearer secret", "X-Account-Name": "acme"}, status: 200},
		{name: "ok with any", header: map[string]string{"Authorization": "Bearer secret", "X-Account-Name": "acme", "Accept": "text/html, */*;q=0.8"}, status: 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, ionixsim.OpenPath, tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.detail == "" {
				return
			}
			var body map[string]string
			if err := json.Unmarshal(r.body, &body); err != nil || body["detail"] != tt.detail {
				t.Errorf("body %s, want detail %q", r.body, tt.detail)
			}
			if wa := r.header.Get("WWW-Authenticate"); (tt.status == 401) != (wa == `Bearer realm="api"`) {
				t.Errorf("WWW-Authenticate %q", wa)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	r := e.do(http.MethodGet, "/api/v1/remediation/action-items/open?limit=5", nil)
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != ionixsim.OpenPath+"?limit=5" {
		t.Errorf("no slash: %d %s", r.status, r.header.Get("Location"))
	}
	r = e.do(http.MethodGet, "/api/v1/remediation/action-items/", nil)
	if r.status != http.StatusNotFound || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("unknown path: %d %s", r.status, r.header.Get("Content-Type"))
	}
	r = e.do(http.MethodPost, ionixsim.ClosedPath, nil)
	if r.status != http.StatusMethodNotAllowed || !strings.Contains(string(r.body), `Method \"POST\" not allowed.`) {
		t.Errorf("POST: %d %s", r.status, r.body)
	}
	r = e.do(http.MethodOptions, ionixsim.OpenPath, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"renders"`) {
		t.Errorf("OPTIONS: %d %s", r.status, r.body)
	}
	r = e.do(http.MethodHead, ionixsim.OpenPath, nil)
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("HEAD: %d %q", r.status, r.body)
	}
	p := e.page(ionixsim.ClosedPath)
	if p.Count != 0 || p.Results == nil || len(p.Results) != 0 {
		t.Errorf("empty closed list: %+v", p)
	}
}

func TestLists(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetOpen(items(4)...) // AI-0 .. AI-3
	at := time.Date(2025, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600))

	// Upsert keeps the position, or appends.
	changed := ionixsim.Item("AI-1", "Changed title", "DNS", 9.5)
	e.sim.Upsert(changed)
	e.sim.Upsert(ionixsim.Item("AI-9", "New", "PKI", 1))
	if got := ids(t, e.sim.Open()); !slices.Equal(got, []string{"AI-0", "AI-1", "AI-2", "AI-3", "AI-9"}) {
		t.Fatalf("open after upsert: %v", got)
	}
	if !bytes.Equal(e.sim.Open()[1], changed) {
		t.Errorf("upsert did not replace the item")
	}

	// Close moves to the closed list with is_open false and last_closed_at.
	if !e.sim.Close("AI-2", at) || !e.sim.Close("AI-0", at) {
		t.Fatal("Close = false")
	}
	if e.sim.Close("AI-2", at) || e.sim.Close("nope", at) {
		t.Error("Close of an item that is not open = true")
	}
	if got := ids(t, e.sim.Open()); !slices.Equal(got, []string{"AI-1", "AI-3", "AI-9"}) {
		t.Errorf("open after close: %v", got)
	}
	closed := e.sim.Closed()
	if got := ids(t, closed); !slices.Equal(got, []string{"AI-2", "AI-0"}) {
		t.Errorf("closed: %v", got)
	}
	item, err := ionix.Decode(closed[0])
	if err != nil {
		t.Fatal(err)
	}
	if item.IsOpen == nil || *item.IsOpen || item.LastClosedAt != "2025-05-06T05:08:09Z" || item.Title != "Finding 2" {
		t.Errorf("closed item: is_open %v, last_closed_at %q, title %q", item.IsOpen, item.LastClosedAt, item.Title)
	}
	// Every other field kept, in order.
	orig := items(3)[2]
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal(orig, &a)
	_ = json.Unmarshal(closed[0], &b)
	for k, v := range a {
		if k != "is_open" && !bytes.Equal(v, b[k]) {
			t.Errorf("field %s changed: %s -> %s", k, v, b[k])
		}
	}
	if i, j := bytes.Index(closed[0], []byte(`"id"`)), bytes.Index(closed[0], []byte(`"urgency"`)); i != 1 || j < i {
		t.Errorf("field order changed: %s", closed[0])
	}
	p := e.page(ionixsim.ClosedPath)
	if p.Count != 2 || !bytes.Equal(p.Results[0], closed[0]) {
		t.Errorf("closed page %+v", p)
	}

	// Reopen moves back; upsert of a closed id reopens it too.
	if !e.sim.Reopen("AI-2", at) || e.sim.Reopen("AI-2", at) {
		t.Error("Reopen")
	}
	if item, _ := ionix.Decode(e.sim.Open()[3]); item.ID != "AI-2" || item.IsOpen == nil || !*item.IsOpen ||
		item.LastOpenedAt != "2025-05-06T05:08:09Z" {
		t.Errorf("reopened item %+v", item)
	}
	e.sim.Upsert(items(1)[0])
	if got := ids(t, e.sim.Closed()); len(got) != 0 {
		t.Errorf("closed after upsert of AI-0: %v", got)
	}
	if !e.sim.Remove("AI-9") || e.sim.Remove("AI-9") {
		t.Error("Remove")
	}
	if got := ids(t, e.sim.Open()); !slices.Equal(got, []string{"AI-1", "AI-3", "AI-2", "AI-0"}) {
		t.Errorf("open at the end: %v", got)
	}

	// SetOpen and SetClosed keep an id in one list.
	e.sim.SetClosed(items(2)...)
	if got := ids(t, e.sim.Open()); !slices.Equal(got, []string{"AI-3", "AI-2"}) {
		t.Errorf("open after SetClosed: %v", got)
	}
	e.sim.SetOpen(items(1)...)
	if got := ids(t, e.sim.Closed()); !slices.Equal(got, []string{"AI-1"}) {
		t.Errorf("closed after SetOpen: %v", got)
	}
}

func TestID(t *testing.T) {
	for raw, want := range map[string]string{
		`{"id":"AI-1"}`: "AI-1",
		`{"id":42}`:     "42",
		`{"id":null}`:   "",
		`{}`:            "",
		`[1]`:           "",
		`not json`:      "",
	} {
		if got := ionixsim.ID(json.RawMessage(raw)); got != want {
			t.Errorf("ID(%s) = %q, want %q", raw, got, want)
		}
	}
}

func TestItem(t *testing.T) {
	raw := ionixsim.Item("AI-7", "Dangling CNAME on promo.example.com", "DNS", 8.8)
	if !bytes.Equal(raw, ionixsim.Item("AI-7", "Dangling CNAME on promo.example.com", "DNS", 8.8)) {
		t.Error("Item is not deterministic")
	}
	item, err := ionix.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if item.ID != "AI-7" || item.Title != "Dangling CNAME on promo.example.com" || item.Type != "DNS" || item.Urgency != 8.8 ||
		item.IsOpen == nil || !*item.IsOpen || item.FirstOpenedAt == "" || item.Asset == "" || item.Summary == "" {
		t.Errorf("item %+v", item)
	}
	for _, shape := range []string{`"title":{"label":"Dangling`, `"urgency":{"urgency":8.8}`, `"groups":[{`} {
		if !bytes.Contains(raw, []byte(shape)) {
			t.Errorf("item %s lacks %s", raw, shape)
		}
	}
	if _, err := ionix.Decode(ionixsim.Item("AI-8", "t", "DNS", 11)); err == nil {
		t.Error("urgency 11 accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("NaN urgency did not panic")
		}
	}()
	var zero float64
	ionixsim.Item("AI-9", "t", "DNS", zero/zero)
}

func TestSample(t *testing.T) {
	s := ionixsim.Sample(20, 1)
	seen := map[string]bool{}
	for _, raw := range s {
		item, err := ionix.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		seen[item.ID] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct ids", len(seen))
	}
}
