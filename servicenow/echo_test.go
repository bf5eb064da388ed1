package servicenow

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/internal/testkit"
)

// Secrets of the echo tests: distinct, with characters that escaping changes.
const (
	echoClientSecret = "echo-CLIENT/secret+value 1"
	echoPassword     = `echo-PASS"word&value=2`
	echoRefreshToken = "echo-REFRESH-token<value>3"
)

// echoAnswer is how the echo server answers: status, Content-Type, and a body
// (and headers) around filler and what it was sent.
type echoAnswer struct {
	name   string
	status int
	ctype  string
	body   func(target, text string) string
	header func(h http.Header, text string)
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

var echoAnswers = []echoAnswer{
	{name: "401 text", status: 401, ctype: "text/plain"},
	{name: "403 text", status: 403, ctype: "text/plain"},
	{name: "500 text", status: 500, ctype: "text/plain"},
	{name: "429 text", status: 429, ctype: "text/plain"},
	{name: "200 HTML", status: 200, ctype: "text/html", body: func(_, text string) string {
		return "<html><head><title>" + text + "</title></head><body>hibernating? " + text + "</body></html>"
	}},
	{name: "200 garbage JSON", status: 200, ctype: "application/json"},
	{name: "400 JSON", status: 400, ctype: "application/json", body: func(target, text string) string {
		if target == "token" {
			return `{"error":"invalid_request","error_description":` + jsonString(text) + `}`
		}
		return `{"error":{"message":` + jsonString(text) + `,"detail":` + jsonString(text) + `},"status":"failure"}`
	}},
	{name: "200 JSON result", status: 200, ctype: "application/json", body: func(target, text string) string {
		if target == "token" {
			return `{"error":` + jsonString(text) + `,"error_description":` + jsonString(text) + `}`
		}
		return `{"import_set":` + jsonString(text) + `,"result":[{"status":` + jsonString(text) + `,"error_message":` +
			jsonString(text) + `,"display_value":` + jsonString(text) + `}]}`
	}},
	{name: "302", status: 302, ctype: "text/plain", header: func(h http.Header, text string) {
		h.Set("Location", "https://elsewhere.example.com/x?echo="+url.QueryEscape(text))
	}},
}

// echoServer answers the token endpoint or the API (the target) as told, with
// filler characters followed by the request it was sent (request line,
// headers, body), in the letter case told; the other part works, issuing a
// new access and refresh token at each grant.
type echoServer struct {
	srv *httptest.Server

	mu      sync.Mutex
	target  string // "token" or "api"
	answer  echoAnswer
	filler  int
	letters func(string) string
	issued  []string
	basic   int // token requests with an Authorization header
}

func newEchoServer(t *testing.T) *echoServer {
	e := &echoServer{}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *echoServer) set(target string, a echoAnswer, filler int, letters func(string) string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.target, e.answer, e.filler, e.letters = target, a, filler, letters
}

func (e *echoServer) serve(w http.ResponseWriter, r *http.Request) {
	echo := echoOf(r)
	e.mu.Lock()
	defer e.mu.Unlock()
	isToken := r.URL.Path == "/oauth_token.do"
	if isToken && r.Header.Get("Authorization") != "" {
		e.basic++
	}
	if isToken != (e.target == "token") {
		if !isToken {
			writeJSON(w, 500, `{"error":{"message":"unexpected"}}`)
			return
		}
		access, refresh := "acc"+randomHex(), "ref"+randomHex()
		e.issued = append(e.issued, access, refresh)
		writeJSON(w, 200, `{"access_token":"`+access+`","refresh_token":"`+refresh+`","token_type":"Bearer","expires_in":1799}`)
		return
	}
	text := e.letters(strings.Repeat("f", e.filler) + echo)
	body := text
	if e.answer.body != nil {
		body = e.answer.body(e.target, text)
	}
	if e.answer.header != nil {
		e.answer.header(w.Header(), text)
	}
	w.Header().Set("X-RateLimit-Limit", "100")
	w.Header().Set("X-RateLimit-Rule", url.PathEscape(text))
	w.Header().Set("Content-Type", e.answer.ctype)
	w.WriteHeader(e.answer.status)
	_, _ = w.Write([]byte(body))
}

// echoOf is what the server was sent: the Authorization header and the body
// first (so that, with some filler, every cut of a message falls inside one of
// the secrets they carry), then the whole request.
func echoOf(r *http.Request) string {
	dump, _ := httputil.DumpRequest(r, true)
	body, _ := io.ReadAll(r.Body)
	return "Authorization: " + r.Header.Get("Authorization") + "\r\n" + string(body) + "\r\n" + string(dump)
}

func randomHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fragments indexes every run of 8 characters of the forms of secrets (as
// is, query-, path- and JSON-escaped), lower-cased.
type fragments map[string]string

func (f fragments) add(secret string) {
	for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), strings.Trim(jsonString(secret), `"`)} {
		form = strings.ToLower(form)
		for i := 0; i+8 <= len(form); i++ {
			f[form[i:i+8]] = secret
		}
	}
}

// find returns a run of 8 characters of a secret that text holds, letter case
// ignored, and the secret; "" when there is none.
func (f fragments) find(text string) (string, string) {
	lower := strings.ToLower(text)
	for i := 0; i+8 <= len(lower); i++ {
		if s, ok := f[lower[i:i+8]]; ok {
			return lower[i : i+8], s
		}
	}
	return "", ""
}

// TestEchoedSecretsNeverLeak makes the token endpoint and the API answer 401,
// 403, 500, 429, 200 with HTML, 200 with garbage JSON, JSON errors, results and
// a redirect, each with 0 to 300 filler characters followed by the whole
// request (in the body, and in the Location and X-RateLimit-Rule headers) (so that every cut of a message falls inside a secret somewhere),
// as is, upper- or lower-cased; and checks that no run of 8 characters of the
// client secret, the password, the refresh token or an issued token reaches
// an error (what /readyz and the dead-letter reason show), its fields, the
// rate limit rule the client reports, or the log.
func TestEchoedSecretsNeverLeak(t *testing.T) {
	t.Parallel() // thousands of requests: not beside the tests that time requests
	es := newEchoServer(t)
	logs := &testkit.Buffer{}
	log := zerolog.New(logs).Level(zerolog.TraceLevel)
	cfg := Config{InstanceURL: es.srv.URL, ClientID: "ionix", ClientSecret: echoClientSecret,
		Username: "ionix", Password: echoPassword, RefreshToken: echoRefreshToken}
	letterCases := []func(string) string{func(s string) string { return s }, strings.ToUpper, strings.ToLower}

	type shown struct{ what, text string }
	var seen []shown
	cases := 0
	for _, target := range []string{"token", "api"} {
		for _, a := range echoAnswers {
			for i, filler := 0, 0; filler <= 300; i, filler = i+1, filler+4 {
				es.set(target, a, filler, letterCases[(i/3)%len(letterCases)]) // each operation in each case
				c, err := New(cfg, log, WithHTTPClient(es.srv.Client()))
				if err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("%s %s filler %d", target, a.name, filler)
				var errs []error
				switch {
				case target == "token":
					errs = append(errs, c.Authenticate(t.Context()))
				case i%3 == 0:
					_, err := c.Import(t.Context(), record("ionix:echo"))
					errs = append(errs, err)
				case i%3 == 1:
					errs = append(errs, c.Probe(t.Context()))
				default:
					_, err := c.FindIncidents(t.Context(), "ionix:echo")
					errs = append(errs, err)
				}
				seen = append(seen, shown{what + " rate limit rule", c.RateLimit().Rule})
				for _, err := range errs {
					if err == nil {
						continue
					}
					cases++
					seen = append(seen, shown{what + " error", err.Error() + fmt.Sprintf(" %+v %#v", err, err)})
					var se *Error
					if errors.As(err, &se) && se.Err != nil {
						seen = append(seen, shown{what + " cause", se.Err.Error()})
					}
				}
			}
		}
	}
	seen = append(seen, shown{"log", logs.String()})

	secrets := fragments{}
	for _, s := range append([]string{echoClientSecret, echoPassword, echoRefreshToken}, es.issued...) {
		secrets.add(s)
	}
	if es.basic != 0 {
		t.Errorf("%d token requests carried the client credentials in an Authorization header", es.basic)
	}
	if len(es.issued) < 100 || cases < 1000 {
		t.Fatalf("the scenario did not run: %d tokens issued, %d errors", len(es.issued), cases)
	}
	leaks := 0
	for _, s := range seen {
		if run, secret := secrets.find(s.text); run != "" {
			if leaks++; leaks <= 10 {
				t.Errorf("%s shows %q of the secret %.5s…:\n%s", s.what, run, secret, s.text)
			}
		}
	}
	if leaks > 0 {
		t.Errorf("%d places show part of a secret", leaks)
	}
	if !strings.Contains(logs.String(), Redacted) {
		t.Error("nothing was redacted in the log: the server did not echo")
	}
}

// TestShortSecretsNotSpeltOut checks that secrets of one letter are redacted
// where they stand as a value, and nowhere else.
func TestShortSecretsNotSpeltOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		http.Error(w, "refused: "+r.PostForm.Encode(), http.StatusUnauthorized)
	}))
	defer srv.Close()
	logs := &testkit.Buffer{}
	c, err := New(Config{InstanceURL: srv.URL, ClientID: "ionix", ClientSecret: "b", Username: "ionix", Password: "a"},
		zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Authenticate(t.Context())
	if err == nil {
		t.Fatal("no error")
	}
	for _, text := range []string{err.Error(), logs.String()} {
		for _, want := range []string{"password grant failed", "client_secret=" + Redacted + "&", "grant_type=password&",
			"password=" + Redacted + "&"} {
			if !strings.Contains(text, want) {
				t.Errorf("%q is not in:\n%s", want, text)
			}
		}
	}
}
