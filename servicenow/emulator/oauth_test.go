package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTokenGrants(t *testing.T) {
	e := newEnv(t, Options{ClientSecret: "client-s3cret", Password: "user-p4ss"})
	good := func() url.Values {
		return url.Values{"grant_type": {"password"}, "client_id": {"ionix"}, "client_secret": {"client-s3cret"},
			"username": {"ionix"}, "password": {"user-p4ss"}}
	}
	first := e.tokenRequest(good())
	if first.status != http.StatusOK {
		t.Fatalf("password grant: %d %s", first.status, first.body)
	}
	var tr tokenReply
	first.json(t, &tr)
	if tr.AccessToken == "" || tr.RefreshToken == "" || tr.Scope != "useraccount" || tr.TokenType != "Bearer" || tr.ExpiresIn != 1799 {
		t.Fatalf("token response = %+v", tr)
	}
	if ct := first.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}

	with := func(k, v string) url.Values {
		f := good()
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	refresh := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "client_id": {"ionix"}, "client_secret": {"client-s3cret"}, "refresh_token": {rt}}
	}
	tests := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantError  string // "error" of the OAuth error body
		wantNote   string
	}{
		{"password grant", good(), http.StatusOK, "", ""},
		{"refresh grant", refresh(tr.RefreshToken), http.StatusOK, "", ""},
		{"unknown client", with("client_id", "other"), http.StatusUnauthorized, "server_error", "unknown client_id"},
		{"wrong client secret", with("client_secret", "nope"), http.StatusUnauthorized, "server_error", "wrong client_secret"},
		{"missing client secret", with("client_secret", ""), http.StatusUnauthorized, "server_error", "wrong client_secret"},
		{"unknown user", with("username", "bob"), http.StatusUnauthorized, "server_error", "unknown user"},
		{"wrong password", with("password", "nope"), http.StatusUnauthorized, "server_error", "wrong password"},
		{"unknown refresh token", refresh("made-up"), http.StatusUnauthorized, "server_error", "unknown refresh_token"},
		{"refresh with wrong secret", func() url.Values { f := refresh(tr.RefreshToken); f.Set("client_secret", "x"); return f }(),
			http.StatusUnauthorized, "server_error", "wrong client_secret"},
		{"client credentials grant", with("grant_type", "client_credentials"), http.StatusUnauthorized, "server_error", "unsupported grant_type client_credentials"},
		{"no grant type", with("grant_type", ""), http.StatusBadRequest, "invalid_request", "grant_type missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.tokenRequest(tt.form)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", r.status, tt.wantStatus, r.body)
			}
			var body map[string]any
			r.json(t, &body)
			if tt.wantError != "" {
				if body["error"] != tt.wantError {
					t.Errorf("error = %v, want %v", body["error"], tt.wantError)
				}
				if tt.wantStatus == http.StatusUnauthorized && body["error_description"] != "access_denied" {
					t.Errorf("error_description = %v, want access_denied", body["error_description"])
				}
			} else if body["access_token"] == "" {
				t.Errorf("no access token in %s", r.body)
			}
			reqs := e.s.Requests()
			last := reqs[len(reqs)-1]
			if last.Note != tt.wantNote || last.Status != tt.wantStatus || last.Path != "/oauth_token.do" {
				t.Errorf("recorded %+v, want note %q status %d", last, tt.wantNote, tt.wantStatus)
			}
		})
	}

	t.Run("credentials in the query string are refused", func(t *testing.T) {
		r := e.do(http.MethodPost, "/oauth_token.do?"+good().Encode(), nil, nil)
		if r.status != http.StatusBadRequest {
			t.Fatalf("status = %d (%s)", r.status, r.body)
		}
	})
	t.Run("GET is not allowed", func(t *testing.T) {
		if r := e.do(http.MethodGet, "/oauth_token.do", nil, nil); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("status = %d", r.status)
		}
	})
	t.Run("request log holds no secret", func(t *testing.T) {
		b, err := json.Marshal(e.s.Requests())
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"client-s3cret", "user-p4ss", tr.RefreshToken, tr.AccessToken} {
			if strings.Contains(string(b), secret) {
				t.Errorf("request log contains a secret: %s", b)
			}
		}
		if !strings.Contains(string(b), Redacted) {
			t.Errorf("request log has no redacted field: %s", b)
		}
	})
}

func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, Options{})
	tr := e.token()
	imp := func(tok string) int {
		r, _ := e.postWith(tok, item("ionix:1"))
		return r.status
	}
	if got := imp(tr.AccessToken); got != http.StatusCreated {
		t.Fatalf("fresh token: %d", got)
	}
	e.clock.Advance(30*time.Minute - time.Second)
	if got := imp(tr.AccessToken); got != http.StatusCreated {
		t.Fatalf("token a second before expiry: %d", got)
	}
	e.clock.Advance(time.Second)
	if got := imp(tr.AccessToken); got != http.StatusUnauthorized {
		t.Fatalf("expired token: %d, want 401", got)
	}
	reqs := e.s.Requests()
	if n := reqs[len(reqs)-1].Note; n != "access token expired" {
		t.Errorf("note = %q", n)
	}

	// The refresh token lives 100 days.
	r := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "client_id": {"ionix"}, "client_secret": {"ionix"}, "refresh_token": {tr.RefreshToken}})
	if r.status != http.StatusOK {
		t.Fatalf("refresh after 30m: %d", r.status)
	}
	var refreshed tokenReply
	r.json(t, &refreshed)
	if refreshed.RefreshToken != tr.RefreshToken {
		t.Errorf("refresh grant answered refresh token %q, want the same one", refreshed.RefreshToken)
	}
	if got := imp(refreshed.AccessToken); got != http.StatusCreated {
		t.Fatalf("refreshed token: %d", got)
	}
	e.clock.Advance(100 * 24 * time.Hour)
	r = e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "client_id": {"ionix"}, "client_secret": {"ionix"}, "refresh_token": {tr.RefreshToken}})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("refresh after 100 days: %d, want 401", r.status)
	}
}

func TestRefreshOmitsRefreshToken(t *testing.T) {
	e := newEnv(t, Options{RefreshOmitsRefreshToken: true, AccessTokenTTL: time.Hour})
	tr := e.token()
	if tr.ExpiresIn != 3599 {
		t.Errorf("expires_in = %d, want 3599", tr.ExpiresIn)
	}
	for i := range 2 {
		r := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "client_id": {"ionix"}, "client_secret": {"ionix"}, "refresh_token": {tr.RefreshToken}})
		var body map[string]any
		r.json(t, &body)
		if r.status != http.StatusOK {
			t.Fatalf("refresh %d: %d", i, r.status)
		}
		if _, ok := body["refresh_token"]; ok {
			t.Fatalf("refresh %d answered a refresh_token", i)
		}
	}
}

func TestAPIAuthentication(t *testing.T) {
	e := newEnv(t, Options{})
	tr := e.token()
	tests := []struct {
		name   string
		header map[string]string
		want   int
		note   string
	}{
		{"bearer", bearer(tr.AccessToken), http.StatusCreated, ""},
		{"no header", map[string]string{"Content-Type": "application/json"}, http.StatusUnauthorized, "no Authorization header"},
		{"unknown token", bearer("made-up"), http.StatusUnauthorized, "unknown access token"},
		{"refresh token as bearer", bearer(tr.RefreshToken), http.StatusUnauthorized, "unknown access token"},
		{"other scheme", map[string]string{"Authorization": "Token " + tr.AccessToken}, http.StatusUnauthorized, "unsupported Authorization scheme"},
		{"basic", map[string]string{"Authorization": "Basic aW9uaXg6aW9uaXg=", "Content-Type": "application/json"}, http.StatusCreated, ""},
		{"wrong basic", map[string]string{"Authorization": "Basic aW9uaXg6bm9wZQ=="}, http.StatusUnauthorized, "wrong basic credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPost, "/api/now/import/u_ionix_action_item", tt.header, strings.NewReader(`{"u_correlation_id":"ionix:a"}`))
			if r.status != tt.want {
				t.Fatalf("status = %d, want %d (%s)", r.status, tt.want, r.body)
			}
			if tt.want == http.StatusUnauthorized {
				var er errorReply
				r.json(t, &er)
				if er.Status != "failure" || er.Error.Message != "User Not Authenticated" {
					t.Errorf("body = %s", r.body)
				}
				reqs := e.s.Requests()
				if n := reqs[len(reqs)-1].Note; n != tt.note {
					t.Errorf("note = %q, want %q", n, tt.note)
				}
			}
		})
	}
}
