package ionixapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

// endlessServer serves pages without end: each with one item, a count that
// grows ahead of the walk (so that no count-based guard stops it) and a
// "next" link to a page never served before. It counts the requests.
func endlessServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		next := fmt.Sprintf("http://%s%s?cursor=c%d&offset=%d", r.Host, r.URL.Path, offset+1, offset+1)
		pageJSON(w, 2*offset+10, next, 1)
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// TestEndlessNextLinksCapped walks a list whose server serves endless
// distinct next links, and checks that the walk ends with ErrLimit, naming
// the cap, at MaxPages pages (or its default), or at ListTimeout.
func TestEndlessNextLinksCapped(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     ionixapi.Config
		pages   int    // pages read; 0: any
		problem string // in the error
	}{
		{"MaxPages", ionixapi.Config{MaxPages: 50}, 50, "ionix.max_pages (50)"},
		{"default MaxPages", ionixapi.Config{}, ionixapi.DefaultMaxListItems / ionixapi.DefaultPageSize, "ionix.max_pages (1000)"},
		{"default MaxPages for the page size", ionixapi.Config{PageSize: 300}, 334, "ionix.max_pages (334)"},
		{"ListTimeout", ionixapi.Config{MaxPages: 1 << 30, ListTimeout: 200 * time.Millisecond}, 0, "ionix.list_timeout (200ms)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, requests := endlessServer(t)
			cfg := tt.cfg
			cfg.BaseURL, cfg.Token, cfg.Account, cfg.HTTPClient = srv.URL, testToken, testAccount, srv.Client()
			// Before the caps, the walk went on until this context ended.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			logs := &testkit.Buffer{}
			items := 0
			st, err := newClient(t, cfg, logs).Each(ctx, ionixapi.Open, func(json.RawMessage) error { items++; return nil })
			if !errors.Is(err, ionixapi.ErrLimit) {
				t.Fatalf("error %v (after %d pages), want ErrLimit", err, st.Pages)
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ionixapi.ErrProtocol) {
				t.Errorf("error %v also matches another cause", err)
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error %q does not name the cap %q", err, tt.problem)
			}
			if tt.pages != 0 && (st.Pages != tt.pages || requests.Load() != int64(tt.pages)) {
				t.Errorf("read %d pages in %d requests, want %d", st.Pages, requests.Load(), tt.pages)
			}
			if st.Items != items || items != st.Pages {
				t.Errorf("stats %+v, %d items handed over", st, items)
			}
			if !strings.Contains(logs.String(), "IONIX API list not read to its end") {
				t.Errorf("not logged:\n%s", logs.String())
			}
		})
	}
}

// TestListWithinCapsReadWhole checks that a list of exactly MaxPages pages
// is read to its end, and that the caller's own deadline is not reported as
// the list timeout.
func TestListWithinCapsReadWhole(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetOpen(items(30)...)
	cfg := e.config()
	cfg.PageSize, cfg.MaxPages = 10, 3
	got, st, err := collect(t, e.client(cfg), ionixapi.Open)
	if err != nil || len(got) != 30 || st.Pages != 3 {
		t.Fatalf("got %d items in %d pages, %v; want 30 in 3", len(got), st.Pages, err)
	}

	srv, _ := endlessServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	c := newClient(t, ionixapi.Config{BaseURL: srv.URL, Token: testToken, Account: testAccount, MaxPages: 1 << 30}, &testkit.Buffer{})
	_, err = c.Each(ctx, ionixapi.Open, func(json.RawMessage) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ionixapi.ErrLimit) {
		t.Fatalf("error %v, want the caller's deadline and no ErrLimit", err)
	}
}

func TestCapsValidated(t *testing.T) {
	err := ionixapi.Config{BaseURL: "https://api.example.com", Token: "t", Account: "a", MaxPages: -1, ListTimeout: -time.Second}.Validate()
	for _, key := range []string{"ionix.max_pages", "ionix.list_timeout"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate = %v, want a problem with %s", err, key)
		}
	}
}
