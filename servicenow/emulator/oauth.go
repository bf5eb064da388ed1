package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"maps"
	"net/http"
	"strings"
	"time"
)

// grant is what a token stands for.
type grant struct {
	user    string
	expires time.Time
}

// secretFormFields are the token request fields never recorded.
var secretFormFields = map[string]bool{"client_secret": true, "password": true, "refresh_token": true, "access_token": true}

func newToken() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// accessDenied is ServiceNow's answer to any credential failure at
// /oauth_token.do; it does not say which credential was wrong.
func accessDenied(w http.ResponseWriter, rec *Request, why string) {
	rec.Note = why
	writeJSON(w, http.StatusUnauthorized, map[string]string{
		"error_description": "access_denied",
		"error":             "server_error",
	})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	rec := record(r)
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, http.MethodPost)
		return
	}
	// Only the form body counts: credentials in the query string are
	// refused by ServiceNow (access_denied), and so they are here.
	if err := r.ParseForm(); err != nil {
		rec.Note = "unreadable form body"
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "unreadable form body"})
		return
	}
	form := r.PostForm
	rec.Fields = map[string]string{}
	for k := range form {
		v := form.Get(k)
		if secretFormFields[k] && v != "" {
			v = Redacted
		}
		rec.Fields[k] = v
	}

	grantType := form.Get("grant_type")
	if grantType == "" {
		rec.Note = "grant_type missing"
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "grant_type is required"})
		return
	}
	if !equal(form.Get("client_id"), s.opt.ClientID) {
		accessDenied(w, rec, "unknown client_id")
		return
	}
	if !equal(form.Get("client_secret"), s.opt.ClientSecret) {
		accessDenied(w, rec, "wrong client_secret")
		return
	}

	now := s.now()
	s.mu.Lock()
	accessTTL, refreshTTL := time.Duration(s.cfg.AccessTokenTTL), time.Duration(s.cfg.RefreshTokenTTL)
	omitRefresh := s.cfg.RefreshOmitsRefreshToken
	s.mu.Unlock()
	var user, refresh string
	switch grantType {
	case "password":
		if !equal(form.Get("username"), s.opt.Username) {
			accessDenied(w, rec, "unknown user")
			return
		}
		if !equal(form.Get("password"), s.opt.Password) {
			accessDenied(w, rec, "wrong password")
			return
		}
		user = s.opt.Username
		refresh = newToken()
		s.mu.Lock()
		s.refresh[refresh] = grant{user: user, expires: now.Add(refreshTTL)}
		s.mu.Unlock()
	case "refresh_token":
		rt := form.Get("refresh_token")
		s.mu.Lock()
		g, ok := s.refresh[rt]
		s.mu.Unlock()
		switch {
		case rt == "" || !ok:
			accessDenied(w, rec, "unknown refresh_token")
			return
		case !now.Before(g.expires):
			accessDenied(w, rec, "refresh_token expired")
			return
		}
		user = g.user
		if !omitRefresh {
			refresh = rt
		}
	default:
		accessDenied(w, rec, "unsupported grant_type "+grantType)
		return
	}

	access := newToken()
	s.mu.Lock()
	s.pruneTokens(now)
	s.access[access] = grant{user: user, expires: now.Add(accessTTL)}
	s.mu.Unlock()

	// ServiceNow announces one second less than the lifetime (1799 for 30m).
	expiresIn := int64(accessTTL/time.Second) - 1
	if expiresIn < 1 {
		expiresIn = 1
	}
	body := map[string]any{
		"access_token": access,
		"scope":        "useraccount",
		"token_type":   "Bearer",
		"expires_in":   expiresIn,
	}
	if refresh != "" {
		body["refresh_token"] = refresh
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// pruneTokens forgets tokens that expired more than a day ago (until then
// the request log can still say "expired" rather than "unknown"); s.mu must
// be held.
func (s *Server) pruneTokens(now time.Time) {
	stale := func(_ string, g grant) bool { return now.Sub(g.expires) > 24*time.Hour }
	maps.DeleteFunc(s.access, stale)
	maps.DeleteFunc(s.refresh, stale)
}

// authenticated wraps an API handler with ServiceNow's authentication (a
// valid, unexpired bearer token, or basic authentication as the user) and
// the rate limit rule, which counts per authenticated user.
func (s *Server) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, why := s.checkAuth(r)
		if why != "" {
			record(r).Note = why
			writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
			return
		}
		if s.rateLimited(w, record(r), user) {
			return
		}
		next(w, r)
	}
}

// checkAuth returns the user of the request, or why it is not
// authenticated.
func (s *Server) checkAuth(r *http.Request) (user, why string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "no Authorization header"
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if equal(user, s.opt.Username) && equal(pass, s.opt.Password) {
			return s.opt.Username, ""
		}
		return "", "wrong basic credentials"
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", "unsupported Authorization scheme"
	}
	s.mu.Lock()
	g, ok := s.access[tok]
	s.mu.Unlock()
	switch {
	case !ok:
		return "", "unknown access token"
	case !s.now().Before(g.expires):
		return "", "access token expired"
	}
	return g.user, ""
}
