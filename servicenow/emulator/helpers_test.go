package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
)

// clockStart is where the tests' clocks start.
var clockStart = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// env is an emulator behind an httptest server.
type env struct {
	t     *testing.T
	s     *Server
	ts    *httptest.Server
	clock *testkit.Clock
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	c := testkit.NewClock(clockStart)
	if o.Now == nil {
		o.Now = c.Now
	}
	s := New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &env{t: t, s: s, ts: ts, clock: c}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", r.status, r.body, err)
	}
}

func (e *env) do(method, path string, header map[string]string, body io.Reader) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.ts.Client().Do(req)
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

func (e *env) tokenRequest(form url.Values) reply {
	e.t.Helper()
	return e.do(http.MethodPost, "/oauth_token.do",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()))
}

func passwordForm() url.Values {
	return url.Values{"grant_type": {"password"}, "client_id": {"ionix"}, "client_secret": {"ionix"},
		"username": {"ionix"}, "password": {"ionix"}}
}

type tokenReply struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// token obtains an access token with the password grant.
func (e *env) token() tokenReply {
	e.t.Helper()
	r := e.tokenRequest(passwordForm())
	if r.status != http.StatusOK {
		e.t.Fatalf("password grant: %d %s", r.status, r.body)
	}
	var tr tokenReply
	r.json(e.t, &tr)
	return tr
}

func bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
}

// post imports one record (any JSON value) with a fresh token.
func (e *env) post(record any) (reply, importResponse) {
	e.t.Helper()
	return e.postWith(e.token().AccessToken, record)
}

func (e *env) postWith(tok string, record any) (reply, importResponse) {
	e.t.Helper()
	var body []byte
	if b, ok := record.([]byte); ok {
		body = b
	} else {
		var err error
		if body, err = json.Marshal(record); err != nil {
			e.t.Fatal(err)
		}
	}
	r := e.do(http.MethodPost, "/api/now/import/u_ionix_action_item", bearer(tok), bytes.NewReader(body))
	var ir importResponse
	if r.status == http.StatusCreated {
		r.json(e.t, &ir)
	}
	return r, ir
}

// item is an import record with the default prefix.
func item(cid string, kv ...string) map[string]string {
	m := map[string]string{"u_name": "Expired certificate on " + cid, "u_body": "body of " + cid,
		"u_category": "PKI", "u_impact": "2", "u_urgency": "1",
		"u_opening_date": "2025-03-01 10:00:00", "u_correlation_id": cid}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// errorReply is ServiceNow's REST error body.
type errorReply struct {
	Error struct {
		Message string `json:"message"`
		Detail  any    `json:"detail"`
	} `json:"error"`
	Status string `json:"status"`
}
