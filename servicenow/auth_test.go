package servicenow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// refreshToken obtains a refresh token from the emulator, as a customer
// does with Postman (integration guide, option 2).
func (e *env) refreshToken() string {
	e.t.Helper()
	resp, err := e.ts.Client().PostForm(e.ts.URL+"/oauth_token.do", url.Values{
		"grant_type": {"password"}, "client_id": {"ionix"}, "client_secret": {testClientSecret},
		"username": {"ionix"}, "password": {testPassword},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeJSON(resp, &tok); err != nil || tok.RefreshToken == "" {
		e.t.Fatalf("no refresh token: %v", err)
	}
	return tok.RefreshToken
}

func TestGrants(t *testing.T) {
	tests := []struct {
		name       string
		cfg        func(e *env) Config
		wantGrants []string
		wantErr    error
		wantFix    string
	}{
		{"option 1: password", func(e *env) Config { return e.config() }, []string{"password:200"}, nil, ""},
		{"option 2: refresh token", func(e *env) Config {
			c := e.config()
			c.Username, c.Password, c.RefreshToken = "", "", e.refreshToken()
			return c
		}, []string{"password:200", "refresh_token:200"}, nil, ""},
		{"both: the refresh token first", func(e *env) Config {
			c := e.config()
			c.RefreshToken = e.refreshToken()
			return c
		}, []string{"password:200", "refresh_token:200"}, nil, ""},
		{"both: refresh token rejected, password fall-back", func(e *env) Config {
			c := e.config()
			c.RefreshToken = "revoked-refresh-token"
			return c
		}, []string{"refresh_token:401", "password:200"}, nil, ""},
		{"option 2: refresh token rejected", func(e *env) Config {
			c := e.config()
			c.Username, c.Password, c.RefreshToken = "", "", "revoked-refresh-token"
			return c
		}, []string{"refresh_token:401"}, ErrConfiguration, fixRefreshToken},
		{"wrong password", func(e *env) Config {
			c := e.config()
			c.Password = "wrong-" + testPassword
			return c
		}, []string{"password:401"}, ErrConfiguration, fixClientCredentials + "; " + fixPassword},
		{"wrong client secret", func(e *env) Config {
			c := e.config()
			c.ClientSecret = "wrong-" + testClientSecret
			return c
		}, []string{"password:401"}, ErrConfiguration, fixClientCredentials + "; " + fixPassword},
		{"both rejected", func(e *env) Config {
			c := e.config()
			c.RefreshToken, c.Password = "revoked-refresh-token", "wrong-"+testPassword
			return c
		}, []string{"refresh_token:401", "password:401"}, ErrConfiguration, fixClientCredentials + "; " + fixPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			c := e.client(tt.cfg(e))
			err := c.Authenticate(t.Context())
			if got := e.grants(); !slices.Equal(got, tt.wantGrants) {
				t.Errorf("grants = %v, want %v", got, tt.wantGrants)
			}
			if tt.wantErr == nil {
				if err != nil || !c.HasToken() {
					t.Fatalf("Authenticate: %v, HasToken %v", err, c.HasToken())
				}
				if _, err := c.Import(t.Context(), record("ionix:1")); err != nil {
					t.Fatalf("Import: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Authenticate: %v, want %v", err, tt.wantErr)
			}
			var se *Error
			errors.As(err, &se)
			if se.Op != OpAuthenticate || se.StatusCode != http.StatusUnauthorized || se.Fix != tt.wantFix ||
				!strings.Contains(se.Message, "access_denied") {
				t.Errorf("error = %#v", se)
			}
			if c.HasToken() {
				t.Error("HasToken after a failed grant")
			}
			// Import fails the same way, without reaching the API.
			if _, err := c.Import(t.Context(), record("ionix:1")); !errors.Is(err, tt.wantErr) {
				t.Errorf("Import: %v", err)
			}
			if n := e.emu.ImportCount(); n != 0 {
				t.Errorf("%d imports without a token", n)
			}
		})
	}
}

func TestFallbackUsesTheNewRefreshToken(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cfg := e.config()
	cfg.RefreshToken = "revoked-refresh-token"
	c := e.client(cfg, WithClock(e.clock.Now))
	if _, err := c.Import(t.Context(), record("ionix:1")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs.String(), "falling back to the password grant") {
		t.Errorf("fall-back not logged: %s", e.logs)
	}
	e.clock.Advance(30 * time.Minute)
	if _, err := c.Import(t.Context(), record("ionix:1")); err != nil {
		t.Fatal(err)
	}
	want := []string{"refresh_token:401", "password:200", "refresh_token:200"}
	if got := e.grants(); !slices.Equal(got, want) {
		t.Errorf("grants = %v, want %v", got, want)
	}
}

func TestRenewBeforeExpiry(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	c := e.client(e.config(), WithClock(e.clock.Now)) // one clock for both sides
	imp := func() {
		t.Helper()
		if _, err := c.Import(t.Context(), record("ionix:1")); err != nil {
			t.Fatal(err)
		}
	}
	imp()
	e.clock.Advance(1799*time.Second - DefaultEarlyExpiry - time.Second) // not yet in the early window
	if !c.HasToken() {
		t.Fatal("token dropped too early")
	}
	imp()
	e.clock.Advance(2 * time.Second) // inside the early window, before expiry
	if c.HasToken() {
		t.Fatal("HasToken inside the early-expiry window")
	}
	imp()
	want := []string{
		"POST /oauth_token.do 200 password",
		"POST /api/now/import/u_ionix_action_item 201",
		"POST /api/now/import/u_ionix_action_item 201",
		"POST /oauth_token.do 200 refresh_token",
		"POST /api/now/import/u_ionix_action_item 201",
	}
	if got := e.calls(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %v\nwant %v", got, want)
	}
}

func TestReauthenticateOn401(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	c := e.client(e.config(), WithClock(testkit.NewClock(clockStart).Now)) // the client's clock stands still
	if _, err := c.Import(t.Context(), record("ionix:1")); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(31 * time.Minute) // ServiceNow's token expired; the client does not know
	res, err := c.Import(t.Context(), record("ionix:1"))
	if err != nil || res.Status != "updated" {
		t.Fatalf("Import after expiry: %+v, %v", res, err)
	}
	want := []string{
		"POST /oauth_token.do 200 password",
		"POST /api/now/import/u_ionix_action_item 201",
		"POST /api/now/import/u_ionix_action_item 401",
		"POST /oauth_token.do 200 refresh_token",
		"POST /api/now/import/u_ionix_action_item 201",
	}
	if got := e.calls(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %v\nwant %v", got, want)
	}
}

func TestSecond401IsConfiguration(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	var mu sync.Mutex
	calls := 0
	e.setStub(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, `{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}`)
	})
	c := e.client(e.config())
	_, err := c.Import(t.Context(), record("ionix:1"))
	var se *Error
	if !errors.As(err, &se) || !errors.Is(err, ErrConfiguration) {
		t.Fatalf("Import: %v", err)
	}
	if se.StatusCode != 401 || se.Fix != fixUnauthorized || se.Message != "User Not Authenticated: Required to provide Auth information" {
		t.Errorf("error = %#v", se)
	}
	if calls != 2 {
		t.Errorf("%d API calls, want 2 (one retry)", calls)
	}
	if got, want := e.grants(), []string{"password:200", "refresh_token:200"}; !slices.Equal(got, want) {
		t.Errorf("grants = %v, want %v", got, want)
	}
}

func TestRefreshResponseWithoutRefreshToken(t *testing.T) {
	e := newEnv(t, emulator.Options{RefreshOmitsRefreshToken: true})
	cfg := e.config()
	cfg.RefreshToken = e.refreshToken()
	cfg.Password, cfg.Username = "", ""
	c := e.client(cfg, WithClock(e.clock.Now))
	for i := range 3 {
		if _, err := c.Import(t.Context(), record("ionix:1")); err != nil {
			t.Fatalf("import %d: %v", i, err)
		}
		e.clock.Advance(30 * time.Minute)
	}
	want := []string{"password:200", "refresh_token:200", "refresh_token:200", "refresh_token:200"}
	if got := e.grants(); !slices.Equal(got, want) {
		t.Errorf("grants = %v, want %v", got, want)
	}
}

func TestOneGrantForConcurrentRequests(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	c := e.client(e.config())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := c.Import(t.Context(), record(fmt.Sprintf("ionix:%d", i)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := e.grants(); len(got) != 1 {
		t.Errorf("grants = %v, want one", got)
	}
	if n := len(e.emu.Incidents()); n != 20 {
		t.Errorf("%d incidents, want 20", n)
	}
}

func TestAuthenticateGrantsAnew(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	c := e.client(e.config())
	for range 2 {
		if err := c.Authenticate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := e.grants(), []string{"password:200", "refresh_token:200"}; !slices.Equal(got, want) {
		t.Errorf("grants = %v, want %v", got, want)
	}
}

// TestTokenEndpointFailures covers answers of /oauth_token.do the emulator
// does not give.
func TestTokenEndpointFailures(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		want       error
		wantStatus int
		wantFix    string
		wantRetry  time.Duration
	}{
		{"unavailable", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			writeJSON(w, http.StatusServiceUnavailable, `{"error":"temporarily_unavailable"}`)
		}, ErrTransient, 503, "", 2 * time.Minute},
		{"rate limited", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			writeJSON(w, http.StatusTooManyRequests, `{}`)
		}, ErrTransient, 429, "", 3 * time.Second},
		{"hibernating", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><head><title>Instance Hibernating page</title></head></html>")
		}, ErrTransient, 200, "", 0},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://sso.example.com/login", http.StatusFound)
		}, ErrConfiguration, 302, fixRedirect + " to https://sso.example.com/login", 0},
		{"not found", func(w http.ResponseWriter, r *http.Request) {
			http.NotFound(w, r)
		}, ErrConfiguration, 404, fixURL, 0},
		{"invalid_grant in a 400", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusBadRequest, `{"error":"invalid_grant","error_description":"bad user"}`)
		}, ErrConfiguration, 400, fixClientCredentials + "; " + fixPassword, 0},
		{"error in a 200", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, `{"error":"server_error","error_description":"access_denied"}`)
		}, ErrConfiguration, 200, fixClientCredentials + "; " + fixPassword, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			defer ts.Close()
			cfg := validConfig()
			cfg.InstanceURL = ts.URL
			c, err := New(cfg, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			err = c.Authenticate(t.Context())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate: %v, want %v", err, tt.want)
			}
			var se *Error
			errors.As(err, &se)
			if se.StatusCode != tt.wantStatus || se.Fix != tt.wantFix || se.RetryAfter != tt.wantRetry || se.Op != OpAuthenticate {
				t.Errorf("error = %#v", se)
			}
		})
	}

	t.Run("no server", func(t *testing.T) {
		ts := httptest.NewServer(http.NotFoundHandler())
		ts.Close()
		cfg := validConfig()
		cfg.InstanceURL = ts.URL
		c, _ := New(cfg, zerolog.Nop())
		if err := c.Authenticate(t.Context()); !errors.Is(err, ErrTransient) {
			t.Errorf("Authenticate: %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		block := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		defer ts.Close()
		defer close(block)
		cfg := validConfig()
		cfg.InstanceURL = ts.URL
		c, _ := New(cfg, zerolog.Nop())
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- c.Authenticate(ctx) }()
		cancel()
		err := <-errc
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTransient) {
			t.Errorf("Authenticate: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		defer ts.Close()
		defer close(block)
		cfg := validConfig()
		cfg.InstanceURL, cfg.Timeout = ts.URL, 50*time.Millisecond
		c, _ := New(cfg, zerolog.Nop())
		err := c.Authenticate(t.Context())
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTransient) {
			t.Errorf("Authenticate: %v", err)
		}
	})
}
