package ionixapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

func TestEachPages(t *testing.T) {
	for _, tt := range []struct {
		name        string
		style       ionixsim.NextStyle
		maxPageSize int // server's cap; 0 for the default
		pageSize    int // client's limit
		items       int
		wantReqs    []string // offset/limit of each request
	}{
		{name: "next links", style: ionixsim.NextAbsolute, pageSize: 10, items: 25,
			wantReqs: []string{"0/10", "10/10", "20/10"}},
		{name: "offsets", style: ionixsim.NextNone, pageSize: 10, items: 25,
			wantReqs: []string{"0/10", "10/10", "20/10"}},
		{name: "next links, exact multiple", style: ionixsim.NextAbsolute, pageSize: 10, items: 20,
			wantReqs: []string{"0/10", "10/10"}},
		{name: "offsets, exact multiple", style: ionixsim.NextNone, pageSize: 10, items: 20,
			wantReqs: []string{"0/10", "10/10"}},
		{name: "next links, server caps limit", style: ionixsim.NextAbsolute, maxPageSize: 7, pageSize: 100, items: 20,
			wantReqs: []string{"0/100", "7/7", "14/7"}},
		{name: "offsets, server caps limit", style: ionixsim.NextNone, maxPageSize: 7, pageSize: 100, items: 20,
			wantReqs: []string{"0/100", "7/100", "14/100"}},
		{name: "default page size", style: ionixsim.NextAbsolute, maxPageSize: 1000, items: 250,
			wantReqs: []string{"0/100", "100/100", "200/100"}},
		{name: "one page", style: ionixsim.NextAbsolute, pageSize: 10, items: 3, wantReqs: []string{"0/10"}},
		{name: "empty list", style: ionixsim.NextAbsolute, pageSize: 10, items: 0, wantReqs: []string{"0/10"}},
		{name: "empty list, offsets", style: ionixsim.NextNone, pageSize: 10, items: 0, wantReqs: []string{"0/10"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, ionixsim.Options{NextStyle: tt.style, MaxPageSize: tt.maxPageSize})
			want := items(tt.items)
			e.sim.SetOpen(want...)
			cfg := e.config()
			cfg.PageSize = tt.pageSize
			got, st, err := collect(t, e.client(cfg), ionixapi.Open)
			if err != nil {
				t.Fatal(err)
			}
			sameItems(t, got, want)
			reqs := e.sim.Requests()
			if o := offsets(reqs); !slices.Equal(o, tt.wantReqs) {
				t.Errorf("requests %v, want %v", o, tt.wantReqs)
			}
			if want := (ionixapi.Stats{Pages: len(tt.wantReqs), Items: tt.items}); st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			for _, r := range reqs {
				if r.Path != "/api/v1/remediation/action-items/open/" || r.Status != http.StatusOK {
					t.Errorf("request %s -> %d", r.Path, r.Status)
				}
			}
		})
	}
}

func TestEachClosedList(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	all := items(5)
	e.sim.SetOpen(all...)
	at := time.Date(2025, 4, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"AI-0002", "AI-0004"} {
		if !e.sim.Close(id, at) {
			t.Fatalf("Close(%s) = false", id)
		}
	}
	c := e.client(e.config())
	closed, st, err := collect(t, c, ionixapi.Closed)
	if err != nil {
		t.Fatal(err)
	}
	if st.Items != 2 || st.Pages != 1 {
		t.Errorf("stats %+v", st)
	}
	for i, raw := range closed {
		item, err := ionix.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"AI-0002", "AI-0004"}[i]; item.ID != want || item.IsOpen == nil || *item.IsOpen ||
			item.LastClosedAt != "2025-04-01T12:00:00Z" {
			t.Errorf("closed item %d: id %s, is_open %v, last_closed_at %q", i, item.ID, item.IsOpen, item.LastClosedAt)
		}
	}
	open, _, err := collect(t, c, ionixapi.Open)
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, open, []json.RawMessage{all[0], all[2], all[4]})
	if p := e.sim.Requests()[0].Path; p != "/api/v1/remediation/action-items/closed/" {
		t.Errorf("closed list read from %s", p)
	}
}

func TestEachSampleDecodes(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	want := ionixsim.Sample(30, 7)
	e.sim.SetOpen(want...)
	cfg := e.config()
	cfg.PageSize = 8
	got, _, err := collect(t, e.client(cfg), ionixapi.Open)
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, got, want)
	for _, raw := range got {
		if _, err := ionix.Decode(raw); err != nil {
			t.Error(err)
		}
	}
}

func TestEachHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		_, _ = w.Write([]byte(`{"count":0,"next":null,"previous":null,"results":[]}`))
	}))
	defer srv.Close()
	cfg := ionixapi.Config{BaseURL: srv.URL + "/", Token: testToken, Account: testAccount}
	if _, _, err := collect(t, newClient(t, cfg, &testkit.Buffer{}), ionixapi.Open); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Authorization":  "Bearer " + testToken,
		"X-Account-Name": testAccount,
		"Accept":         "application/json",
	} {
		if v := got.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
}

func TestEachBasePath(t *testing.T) {
	// The API behind a proxy that serves it under /ionix/ (and strips the
	// prefix, so the emulator cannot write links with it: offsets only).
	e := newEnv(t, ionixsim.Options{NextStyle: ionixsim.NextNone})
	mux := http.NewServeMux()
	mux.Handle("/ionix/", http.StripPrefix("/ionix", e.sim))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	want := items(3)
	e.sim.SetOpen(want...)
	cfg := e.config()
	cfg.BaseURL = srv.URL + "/ionix/"
	cfg.PageSize = 2
	got, st, err := collect(t, e.client(cfg), ionixapi.Open)
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, got, want)
	if st.Pages != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestEachFunctionErrorStops(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetOpen(items(25)...)
	cfg := e.config()
	cfg.PageSize = 10
	errStop := errors.New("stop here")
	n := 0
	st, err := e.client(cfg).Each(t.Context(), ionixapi.Open, func(json.RawMessage) error {
		n++
		if n == 13 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("error %v, want errStop", err)
	}
	for _, s := range []error{ionixapi.ErrUnavailable, ionixapi.ErrProtocol, ionixapi.ErrRequest} {
		if errors.Is(err, s) {
			t.Errorf("fn's error matches %v", s)
		}
	}
	if !strings.Contains(err.Error(), "item 13") {
		t.Errorf("error %q does not name the item", err)
	}
	if want := (ionixapi.Stats{Pages: 2, Items: 13}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if reqs := e.sim.Requests(); len(reqs) != 2 {
		t.Errorf("%d requests after fn failed on page 2, want 2", len(reqs))
	}
}

func TestEachUnknownList(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	_, err := e.client(e.config()).Each(t.Context(), ionixapi.List("archived"), func(json.RawMessage) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `"archived"`) {
		t.Fatalf("error %v", err)
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

func TestListPath(t *testing.T) {
	for l, want := range map[ionixapi.List]string{
		ionixapi.Open:   ionixsim.OpenPath,
		ionixapi.Closed: ionixsim.ClosedPath,
	} {
		if got := l.Path(); got != want {
			t.Errorf("%s.Path() = %q, want %q", l, got, want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  ionixapi.Config
		want []string // keys with a problem, in order
	}{
		{name: "ok", cfg: ionixapi.Config{BaseURL: "https://api.portal.ionix.io", Token: "t", Account: "a"}},
		{name: "ok with path and loopback http", cfg: ionixapi.Config{BaseURL: "http://127.0.0.1:8080/ionix/", Token: "t", Account: "a"}},
		{name: "ok localhost", cfg: ionixapi.Config{BaseURL: "http://localhost:1", Token: "t", Account: "a"}},
		{name: "empty", cfg: ionixapi.Config{}, want: []string{"ionix.api_url", "ionix.token", "ionix.account"}},
		{name: "relative URL", cfg: ionixapi.Config{BaseURL: "api.portal.ionix.io", Token: "t", Account: "a"}, want: []string{"ionix.api_url"}},
		{name: "plain http", cfg: ionixapi.Config{BaseURL: "http://api.portal.ionix.io", Token: "t", Account: "a"}, want: []string{"ionix.api_url"}},
		{name: "ftp", cfg: ionixapi.Config{BaseURL: "ftp://api.portal.ionix.io", Token: "t", Account: "a"}, want: []string{"ionix.api_url"}},
		{name: "user info", cfg: ionixapi.Config{BaseURL: "https://u:" + testToken + "@api.portal.ionix.io", Token: "t", Account: "a"}, want: []string{"ionix.api_url"}},
		{name: "query", cfg: ionixapi.Config{BaseURL: "https://api.portal.ionix.io/?token=" + testToken, Token: "t", Account: "a"}, want: []string{"ionix.api_url"}},
		{name: "token white space", cfg: ionixapi.Config{BaseURL: "https://api.portal.ionix.io", Token: testToken + "\n", Account: "a"}, want: []string{"ionix.token"}},
		{name: "blank account", cfg: ionixapi.Config{BaseURL: "https://api.portal.ionix.io", Token: "t", Account: "  "}, want: []string{"ionix.account"}},
		{name: "negative numbers", cfg: ionixapi.Config{BaseURL: "https://api.portal.ionix.io", Token: "t", Account: "a",
			Timeout: -1, PageSize: -1, MaxAttempts: -1, MaxBackoff: -1},
			want: []string{"ionix.timeout", "ionix.page_size", "ionix.max_attempts", "ionix.max_backoff"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ionixapi.New(tt.cfg, zerologNop())
			if len(tt.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			var keys []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *ionixapi.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a *FieldError", e)
				}
				keys = append(keys, fe.Key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("keys %v, want %v (%v)", keys, tt.want, err)
			}
			noSecret(t, "validation error", err.Error())
			if c != nil {
				t.Error("client returned with an error")
			}
		})
	}
}

func TestBaseURL(t *testing.T) {
	c := newClient(t, ionixapi.Config{BaseURL: "https://api.portal.ionix.io/", Token: "t", Account: "a"}, &testkit.Buffer{})
	if got := c.BaseURL(); got != "https://api.portal.ionix.io" {
		t.Errorf("BaseURL() = %q", got)
	}
}

// ExampleClient_Each reads the open list of an emulated API.
func ExampleClient_Each() {
	sim := ionixsim.New(ionixsim.Options{Token: "secret", Account: "acme", MaxPageSize: 2})
	sim.SetOpen(
		ionixsim.Item("AI-1", "Expired TLS certificate on mail.example.com", "PKI", 7.5),
		ionixsim.Item("AI-2", "Open RDP on 203.0.113.45", "Network", 9.1),
		ionixsim.Item("AI-3", "Missing DMARC record on example.net", "Email Security", 5),
	)
	srv := httptest.NewServer(sim)
	defer srv.Close()

	c, err := ionixapi.New(ionixapi.Config{BaseURL: srv.URL, Token: "secret", Account: "acme"}, zerologNop())
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := c.Each(t0(), ionixapi.Open, func(raw json.RawMessage) error {
		item, err := ionix.Decode(raw)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s (%s, %.1f)\n", item.ID, item.Title, item.Type, item.Urgency)
		return nil
	})
	fmt.Printf("%+v %v\n", st, err)
	// Output:
	// AI-1 Expired TLS certificate on mail.example.com (PKI, 7.5)
	// AI-2 Open RDP on 203.0.113.45 (Network, 9.1)
	// AI-3 Missing DMARC record on example.net (Email Security, 5.0)
	// {Pages:2 Items:3 Retries:0} <nil>
}
