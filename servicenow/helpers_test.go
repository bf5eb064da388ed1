package servicenow

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// Test credentials: distinct, so that a leak of any of them is visible.
const (
	testClientSecret = "cl1ent-S3CRET-value"
	testPassword     = "pa55-W0RD-value"
)

// clockStart is where the tests' clocks start.
var clockStart = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// env is the emulator behind an httptest server, with a spy that notes
// every token it issues (to check that none leaks) and an optional stub
// that takes over API paths.
type env struct {
	t     *testing.T
	emu   *emulator.Server
	ts    *httptest.Server
	clock *testkit.Clock // the emulator's clock
	logs  *testkit.Buffer

	mu     sync.Mutex
	issued []string // access and refresh tokens the emulator issued
	stub   http.HandlerFunc
}

func newEnv(t *testing.T, o emulator.Options) *env {
	t.Helper()
	e := &env{t: t, clock: testkit.NewClock(clockStart), logs: &testkit.Buffer{}}
	if o.ClientSecret == "" {
		o.ClientSecret = testClientSecret
	}
	if o.Password == "" {
		o.Password = testPassword
	}
	if o.Now == nil {
		o.Now = e.clock.Now
	}
	e.emu = emulator.New(o)
	e.ts = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.ts.Close)
	return e
}

// serve passes requests to the stub (API paths, when set) or the emulator,
// noting the tokens issued.
func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	stub := e.stub
	e.mu.Unlock()
	if stub != nil && strings.HasPrefix(r.URL.Path, "/api/") {
		stub(w, r)
		return
	}
	if r.URL.Path != "/oauth_token.do" {
		e.emu.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	e.emu.ServeHTTP(rec, r)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &tok) == nil {
		e.mu.Lock()
		for _, v := range []string{tok.AccessToken, tok.RefreshToken} {
			if v != "" {
				e.issued = append(e.issued, v)
			}
		}
		e.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// setStub makes h answer every /api/ request.
func (e *env) setStub(h http.HandlerFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stub = h
}

func (e *env) issuedTokens() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.issued...)
}

// config is option 1 against the emulator.
func (e *env) config() Config {
	return Config{
		InstanceURL:  e.ts.URL,
		ClientID:     "ionix",
		ClientSecret: testClientSecret,
		Username:     "ionix",
		Password:     testPassword,
	}
}

// client returns a client logging at trace level into e.logs.
func (e *env) client(cfg Config, opts ...Option) *Client {
	e.t.Helper()
	log := zerolog.New(e.logs).Level(zerolog.TraceLevel)
	c, err := New(cfg, log, opts...)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return c
}

// grants lists the grant types of the token requests the emulator saw.
func (e *env) grants() []string {
	var out []string
	for _, r := range e.emu.Requests() {
		if r.Path == "/oauth_token.do" {
			out = append(out, r.Fields["grant_type"]+":"+itoa(r.Status))
		}
	}
	return out
}

// calls lists "METHOD path status" of the emulator's requests.
func (e *env) calls() []string {
	var out []string
	for _, r := range e.emu.Requests() {
		s := r.Method + " " + r.Path + " " + itoa(r.Status)
		if g := r.Fields["grant_type"]; r.Path == "/oauth_token.do" && g != "" {
			s += " " + g
		}
		out = append(out, s)
	}
	return out
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// record is an import record with the default prefix.
func record(cid string, kv ...string) map[string]string {
	m := map[string]string{"u_name": "Expired certificate", "u_body": "details", "u_category": "PKI",
		"u_impact": "2", "u_urgency": "1", "u_opening_date": "2025-03-01 10:00:00", "u_correlation_id": cid}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// writeJSON answers like ServiceNow.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
