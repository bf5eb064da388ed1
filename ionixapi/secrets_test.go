package ionixapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

// TestTokenNeverLeaks runs failures against a server that echoes the token
// everywhere it can (bodies, page titles, Location, next links and the
// URLs of failing requests) and checks that no error string, no cause and
// no log entry holds it.
func TestTokenNeverLeaks(t *testing.T) {
	var srv *httptest.Server
	withToken := func(path string) string {
		return srv.URL + path + "?token=" + url.QueryEscape(testToken) + "&offset=1"
	}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		echo := fmt.Sprintf("you sent %s to %s", auth, r.URL.RequestURI())
		mode, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch mode {
		case "text400":
			http.Error(w, echo, http.StatusBadRequest)
		case "json401":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"detail": echo})
		case "json503":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"detail": echo})
		case "html":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "<html><head><title>%s</title></head></html>", echo)
		case "text200":
			fmt.Fprint(w, echo)
		case "redirect":
			http.Redirect(w, r, "https://elsewhere.example.com/?token="+url.QueryEscape(testToken), http.StatusFound)
		case "foreign":
			pageJSON(w, 20, "https://evil.example.com/x?token="+url.QueryEscape(testToken), 10)
		case "loop":
			pageJSON(w, 20, withToken(r.URL.Path), 10)
		case "drop":
			if r.URL.Query().Has("token") {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close()
				}
				return
			}
			pageJSON(w, 20, withToken(r.URL.Path), 10)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	logs := &testkit.Buffer{}
	for _, mode := range []string{"text400", "json401", "json503", "html", "text200", "redirect", "foreign", "loop", "drop"} {
		t.Run(mode, func(t *testing.T) {
			cfg := ionixapi.Config{BaseURL: srv.URL + "/" + mode, Token: testToken, Account: testAccount,
				MaxAttempts: 2, MaxBackoff: 1}
			_, _, err := collect(t, newClient(t, cfg, logs), ionixapi.Open)
			if err == nil {
				t.Fatal("no error")
			}
			noSecret(t, "error", err.Error())
			noSecret(t, "error %+v", fmt.Sprintf("%+v", err))
			var ae *ionixapi.Error
			if errors.As(err, &ae) {
				noSecret(t, "fix", ae.Fix)
				if ae.Err != nil {
					noSecret(t, "cause", ae.Err.Error())
				}
			}
			if mode == "drop" && !strings.Contains(err.Error(), ionixapi.Redacted) {
				t.Errorf("the URL of the failed request is not in the error, redacted: %v", err)
			}
		})
	}
	noSecret(t, "logs", logs.String())
	if !strings.Contains(logs.String(), ionixapi.Redacted) {
		t.Error("nothing was redacted in the logs: the test does not test")
	}

	// And with the emulator: wrong credentials, faults, success, at trace level.
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetOpen(items(5)...)
	e.sim.FailNext(1, 500)
	e.sim.ServeHTMLNext(1)
	if _, _, err := collect(t, e.client(e.config()), ionixapi.Open); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Account = "other"
	_, _, err := collect(t, e.client(cfg), ionixapi.Open)
	noSecret(t, "error", err.Error())
	noSecret(t, "logs", e.logs.String())
}
