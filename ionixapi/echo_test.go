package ionixapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionixapi"
)

// echoToken is the token of the echo test: with characters that escaping
// changes.
const echoToken = "ionix-ECHO/token+with spaces&more"

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// echoAnswers are the ways the echo server wraps filler and what it was
// sent.
var echoAnswers = []struct {
	name   string
	status int
	ctype  string
	body   func(text string) string
	header func(h http.Header, text string)
}{
	{name: "401 text", status: 401, ctype: "text/plain"},
	{name: "403 text", status: 403, ctype: "text/plain"},
	{name: "500 text", status: 500, ctype: "text/plain"},
	{name: "429 text", status: 429, ctype: "text/plain"},
	{name: "400 JSON detail", status: 400, ctype: "application/json", body: func(text string) string {
		return `{"detail":` + jsonString(text) + `}`
	}},
	{name: "200 HTML", status: 200, ctype: "text/html", body: func(text string) string {
		return "<html><head><title>" + text + "</title></head></html>"
	}},
	{name: "200 garbage JSON", status: 200, ctype: "application/json"},
	{name: "200 bad count", status: 200, ctype: "application/json", body: func(text string) string {
		return `{"count":` + jsonString(text) + `,"results":[]}`
	}},
	{name: "200 foreign next", status: 200, ctype: "application/json", body: func(text string) string {
		host := strings.Map(func(r rune) rune {
			if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
				return r
			}
			return '-'
		}, text)
		return `{"count":9,"next":` + jsonString("https://"+host+".example.com/") + `,"results":[{}]}`
	}},
	{name: "302", status: 302, ctype: "text/plain", header: func(h http.Header, text string) {
		h.Set("Location", "https://elsewhere.example.com/?echo="+url.QueryEscape(text))
	}},
}

// TestEchoedTokenNeverLeaks makes the API answer in every way above, with 0
// to 300 filler characters followed by the whole request it was sent
// (request line, headers, body), as is, upper- or lower-cased, and checks
// that no run of 8 characters of the token (as is, query-, path- or
// JSON-escaped) reaches an error (what poll --json shows) or the log.
func TestEchoedTokenNeverLeaks(t *testing.T) {
	t.Parallel() // thousands of requests: not beside the tests that time requests
	var (
		mu      sync.Mutex
		answer  = echoAnswers[0]
		filler  int
		letters func(string) string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The Authorization header first, so that with some filler every
		// cut of a message falls inside the token; then the whole request.
		dump, _ := httputil.DumpRequest(r, true)
		echo := "Authorization: " + r.Header.Get("Authorization") + "\r\n" + string(dump)
		mu.Lock()
		defer mu.Unlock()
		text := letters(strings.Repeat("f", filler) + echo)
		body := text
		if answer.body != nil {
			body = answer.body(text)
		}
		if answer.header != nil {
			answer.header(w.Header(), text)
		}
		w.Header().Set("Content-Type", answer.ctype)
		w.WriteHeader(answer.status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()

	logs := &testkit.Buffer{}
	cfg := ionixapi.Config{BaseURL: srv.URL, Token: echoToken, Account: testAccount, MaxAttempts: 2,
		MaxBackoff: time.Nanosecond, HTTPClient: srv.Client()}
	c := newClient(t, cfg, logs)
	letterCases := []func(string) string{func(s string) string { return s }, strings.ToUpper, strings.ToLower}
	var seen []string
	for _, a := range echoAnswers {
		for i, n := 0, 0; n <= 300; i, n = i+1, n+2 {
			mu.Lock()
			answer, filler, letters = a, n, letterCases[i%len(letterCases)]
			mu.Unlock()
			_, _, err := collect(t, c, ionixapi.Open)
			if err == nil {
				t.Fatalf("%s filler %d: no error", a.name, n)
			}
			text := err.Error() + fmt.Sprintf(" %+v", err)
			var ae *ionixapi.Error
			if errors.As(err, &ae) {
				text += " " + ae.Message + " " + ae.Fix
				if ae.Err != nil {
					text += " " + ae.Err.Error()
				}
			}
			seen = append(seen, fmt.Sprintf("%s filler %d: %s", a.name, n, text))
		}
	}
	seen = append(seen, "log: "+logs.String())

	fragments := map[string]bool{}
	for _, form := range []string{echoToken, url.QueryEscape(echoToken), url.PathEscape(echoToken), strings.Trim(jsonString(echoToken), `"`)} {
		form = strings.ToLower(form)
		for i := 0; i+8 <= len(form); i++ {
			fragments[form[i:i+8]] = true
		}
	}
	leaks := 0
	for _, text := range seen {
		lower := strings.ToLower(text)
		for i := 0; i+8 <= len(lower); i++ {
			if fragments[lower[i:i+8]] {
				if leaks++; leaks <= 10 {
					t.Errorf("%q of the token is in %s", lower[i:i+8], text)
				}
				break
			}
		}
	}
	if leaks > 0 {
		t.Errorf("%d of %d places show part of the token", leaks, len(seen))
	}
	if !strings.Contains(logs.String(), ionixapi.Redacted) {
		t.Error("nothing was redacted in the log: the server did not echo")
	}
}

// TestShortTokenNotSpeltOut checks that a token of one letter is redacted
// where it stands as a value, and nowhere else.
func TestShortTokenNotSpeltOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad token: "+r.Header.Get("Authorization")+" (Authorization header)", http.StatusUnauthorized)
	}))
	defer srv.Close()
	logs := &testkit.Buffer{}
	_, _, err := collect(t, newClient(t, ionixapi.Config{BaseURL: srv.URL, Token: "a", Account: testAccount}, logs), ionixapi.Open)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"bad token: Bearer " + ionixapi.Redacted + " (Authorization header)", "credentials refused",
		"check ionix.token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q is not in %v", want, err)
		}
	}
}
