package ionixapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/remote"
)

func TestDecodePage(t *testing.T) {
	for _, tt := range []struct {
		name    string
		body    string
		want    page
		notJSON bool   // error wraps errNotJSON
		problem string // error contains this; "" for success
	}{
		{name: "page", body: `{"count":3,"next":"https://h/x/?limit=2&offset=2","previous":null,"results":[{"id":"a"}, {"id" : "b"}]}`,
			want: page{Count: 3, Next: "https://h/x/?limit=2&offset=2", Results: []json.RawMessage{[]byte(`{"id":"a"}`), []byte(`{"id" : "b"}`)}}},
		{name: "last page", body: `{"count":1,"next":null,"previous":"https://h/","results":[1]}`,
			want: page{Count: 1, Results: []json.RawMessage{[]byte(`1`)}}},
		{name: "no next field", body: `{"count":0,"results":[]}`, want: page{Results: []json.RawMessage{}}},
		{name: "unknown fields", body: `{"count":0,"results":[],"extra":{"x":1}}`, want: page{Results: []json.RawMessage{}}},
		{name: "whitespace", body: " \n{\"count\" : 0 , \"results\" : [ ] }\n", want: page{Results: []json.RawMessage{}}},
		{name: "empty", body: ``, notJSON: true, problem: "empty body"},
		{name: "html", body: `<html><head><title>Maintenance</title></head></html>`, notJSON: true, problem: "HTML page: Maintenance"},
		{name: "truncated", body: `{"count":3,"results":[{"id":"a"}`, notJSON: true, problem: "not JSON"},
		{name: "text", body: "Bad Gateway\n", notJSON: true, problem: `"Bad Gateway"`},
		{name: "array", body: `[{"id":"a"}]`, problem: "array instead of an object"},
		{name: "null", body: `null`, problem: `no "results"`},
		{name: "no results", body: `{"count":0}`, problem: `no "results"`},
		{name: "null results", body: `{"count":0,"results":null}`, problem: `no "results"`},
		{name: "results object", body: `{"count":0,"results":{}}`, problem: `"results" is a JSON object`},
		{name: "no count", body: `{"results":[]}`, problem: `no "count"`},
		{name: "negative count", body: `{"count":-1,"results":[]}`, problem: "not a non-negative integer"},
		{name: "fraction count", body: `{"count":1.5,"results":[]}`, problem: "not a non-negative integer"},
		{name: "string count", body: `{"count":"1","results":[]}`, problem: "count"},
		{name: "next number", body: `{"count":0,"next":1,"results":[]}`, problem: `"next" is neither`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePage([]byte(tt.body), nil)
			if tt.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Count != tt.want.Count || got.Next != tt.want.Next || len(got.Results) != len(tt.want.Results) {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				for i := range got.Results {
					if !bytes.Equal(got.Results[i], tt.want.Results[i]) {
						t.Errorf("result %d = %s, want %s", i, got.Results[i], tt.want.Results[i])
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("no error for %q", tt.body)
			}
			if errors.Is(err, errNotJSON) != tt.notJSON {
				t.Errorf("errors.Is(err, errNotJSON) = %v, want %v (%v)", !tt.notJSON, tt.notJSON, err)
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error %q does not contain %q", err, tt.problem)
			}
		})
	}
}

// FuzzDecodePage checks that decodePage never panics, that a body is
// transient exactly when it is not JSON, and that an accepted page keeps
// each result as valid JSON that re-encodes to the same page.
func FuzzDecodePage(f *testing.F) {
	for _, seed := range []string{
		`{"count":2,"next":null,"previous":null,"results":[{"id":"a","title":{"label":"x"}},{"id":"b"}]}`,
		`{"count":10,"next":"http://127.0.0.1:1/api/v1/remediation/action-items/open/?limit=1&offset=1","results":[null]}`,
		`{"count":0,"results":[]}`, `{"count":1e2,"results":[]}`, `{"count":-0,"results":[]}`,
		`{"count":99999999999999999999,"results":[]}`, `{"results":[1,"2",[3]],"count":3,"next":"\u00e9"}`,
		`<html><title>x</title></html>`, `[]`, `null`, ``, `{`, "\x00", "{\"count\":1,\"results\":[\"\xff\"]}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodePage(body, nil)
		if !json.Valid(body) {
			if !errors.Is(err, errNotJSON) {
				t.Fatalf("invalid JSON %q: error %v does not wrap errNotJSON", body, err)
			}
			return
		}
		if errors.Is(err, errNotJSON) {
			t.Fatalf("valid JSON %q reported as not JSON", body)
		}
		if err != nil {
			return
		}
		if p.Count < 0 || p.Results == nil {
			t.Fatalf("accepted page %+v", p)
		}
		for i, r := range p.Results {
			if !json.Valid(r) {
				t.Fatalf("result %d %q is not valid JSON", i, r)
			}
		}
		again, err := json.Marshal(map[string]any{"count": p.Count, "next": p.Next, "results": p.Results})
		if err != nil {
			t.Fatal(err)
		}
		q, err := decodePage(again, nil)
		if err != nil || q.Count != p.Count || q.Next != p.Next || len(q.Results) != len(p.Results) {
			t.Fatalf("re-encoded page %s: %+v, %v; want %+v", again, q, err, p)
		}
	})
}

func TestResolveNext(t *testing.T) {
	mustParse := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	const path = "/api/v1/remediation/action-items/open/"
	for _, tt := range []struct {
		name, base, next string
		want             string // "" when refused
		problem          string
	}{
		{name: "same origin", base: "https://api.portal.ionix.io", next: "https://api.portal.ionix.io" + path + "?limit=100&offset=100",
			want: "https://api.portal.ionix.io" + path + "?limit=100&offset=100"},
		{name: "host case", base: "https://api.portal.ionix.io", next: "https://API.Portal.IONIX.io" + path + "?offset=1",
			want: "https://api.portal.ionix.io" + path + "?offset=1"},
		{name: "http link behind TLS", base: "https://api.portal.ionix.io", next: "http://api.portal.ionix.io" + path + "?offset=1",
			want: "https://api.portal.ionix.io" + path + "?offset=1"},
		{name: "explicit default port", base: "https://api.portal.ionix.io", next: "https://api.portal.ionix.io:443" + path,
			want: "https://api.portal.ionix.io" + path},
		{name: "same explicit port", base: "http://127.0.0.1:8080", next: "http://127.0.0.1:8080" + path + "?offset=5",
			want: "http://127.0.0.1:8080" + path + "?offset=5"},
		{name: "port left out", base: "http://127.0.0.1:8080", next: "http://127.0.0.1" + path,
			want: "http://127.0.0.1:8080" + path},
		{name: "relative", base: "https://api.portal.ionix.io", next: "?limit=10&offset=10",
			want: "https://api.portal.ionix.io" + path + "?limit=10&offset=10"},
		{name: "absolute path", base: "https://api.portal.ionix.io", next: path + "?cursor=abc",
			want: "https://api.portal.ionix.io" + path + "?cursor=abc"},
		{name: "user info dropped", base: "https://api.portal.ionix.io", next: "https://u:p@api.portal.ionix.io" + path + "#frag",
			want: "https://api.portal.ionix.io" + path},
		{name: "other host", base: "https://api.portal.ionix.io", next: "https://evil.example.com" + path, problem: "another host (evil.example.com"},
		{name: "sub domain", base: "https://api.portal.ionix.io", next: "https://x.api.portal.ionix.io" + path, problem: "another host"},
		{name: "protocol relative", base: "https://api.portal.ionix.io", next: "//evil.example.com" + path, problem: "another host"},
		{name: "other port", base: "http://127.0.0.1:8080", next: "http://127.0.0.1:9090" + path, problem: "another port (9090"},
		{name: "other scheme", base: "https://api.portal.ionix.io", next: "ftp://api.portal.ionix.io" + path, problem: `scheme "ftp"`},
		{name: "not a URL", base: "https://api.portal.ionix.io", next: "http://[::1", problem: "not a URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := mustParse(tt.base)
			current := mustParse(tt.base + path + "?limit=10&offset=0")
			got, err := resolveNext(base, current, tt.next, nil)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("resolveNext(%q) = %v, %v; want error containing %q", tt.next, got, err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("resolveNext(%q) = %s, want %s", tt.next, got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	for _, tt := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"99999999999", 24 * time.Hour},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"Fri, 14 Mar 2025 09:27:53 GMT", time.Minute},
		{"soon", 0},
	} {
		t.Run(tt.value, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if got := remote.RetryAfter(h, now); got != tt.want {
				t.Errorf("remote.RetryAfter(%q) = %s, want %s", tt.value, got, tt.want)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		err  *Error
		want string
	}{
		{&Error{Kind: ErrUnauthorized, List: Open, StatusCode: 401, Message: "Invalid token.", Attempts: 1, Fix: "check ionix.token"},
			"ionix api: credentials refused: open list at offset 0: HTTP 401: Invalid token. (fix: check ionix.token)"},
		{&Error{Kind: ErrUnavailable, List: Closed, Offset: 200, StatusCode: 429, Message: "Request was throttled.", Attempts: 5, RetryAfter: 7 * time.Second},
			"ionix api: unavailable: closed list at offset 200: HTTP 429: Request was throttled. (5 attempts) (retry after 7s)"},
		{&Error{Kind: ErrProtocol, List: Open, Offset: 10, Message: "loops"},
			"ionix api: unexpected answer: open list at offset 10: loops"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}
