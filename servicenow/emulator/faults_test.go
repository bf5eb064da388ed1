package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
)

func (e *env) lastRequest() Request {
	e.t.Helper()
	reqs := e.s.Requests()
	if len(reqs) == 0 {
		e.t.Fatal("no request recorded")
	}
	return reqs[len(reqs)-1]
}

// tryPost posts without failing on a transport error.
func (e *env) tryPost(tok string, record any) (*http.Response, error) {
	b, _ := json.Marshal(record)
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/now/import/u_ionix_action_item", strings.NewReader(string(b)))
	for k, v := range bearer(tok) {
		req.Header.Set(k, v)
	}
	resp, err := e.ts.Client().Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestSimConfig(t *testing.T) {
	e := newEnv(t, Options{Latency: time.Millisecond, Roles: []string{RoleAdmin}})
	var c Config
	e.do(http.MethodGet, "/sim/config", nil, nil).json(t, &c)
	want := DefaultConfig()
	want.Latency = Duration(time.Millisecond)
	want.Roles = []string{RoleAdmin}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("GET /sim/config\n got %+v\nwant %+v", c, want)
	}

	put := func(body string) reply {
		return e.do(http.MethodPut, "/sim/config", map[string]string{"Content-Type": "application/json"}, strings.NewReader(body))
	}
	r := put(`{"hibernating":true,"access_token_ttl":"5m","roles":[],"missing_acls":["write"],` +
		`"rate_limit":{"requests":3,"window":"10s"},"latency_jitter":0.5,"error_rate":0.25,"error_status":503,"seed":7,` +
		`"outage":{"mode":"reset","for":"90s"},"drop_responses":2,"drop_rate":0.1,"staging_as_created":true,"field_max_length":{"name":80}}`)
	if r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	var got Config
	e.do(http.MethodGet, "/sim/config", nil, nil).json(t, &got)
	want = c
	want.Hibernating, want.AccessTokenTTL, want.Roles, want.MissingACLs = true, Duration(5*time.Minute), []string{}, []string{"write"}
	want.RateLimit = RateLimit{Requests: 3, Window: Duration(10 * time.Second)}
	want.LatencyJitter, want.ErrorRate, want.ErrorStatus, want.Seed = Duration(500*time.Millisecond), 0.25, 503, 7
	want.Outage = Outage{Mode: OutageReset, Until: e.clock.Now().Add(90 * time.Second)}
	want.DropResponses, want.DropRate, want.StagingAsCreated, want.FieldMaxLength = 2, 0.1, true, map[string]int{"name": 80}
	if fmt.Sprint(got) != fmt.Sprint(want) || !got.Outage.Until.Equal(want.Outage.Until) {
		t.Errorf("after PUT\n got %+v\nwant %+v", got, want)
	}
	if sc := e.s.Config(); fmt.Sprint(sc) != fmt.Sprint(got) {
		t.Errorf("Server.Config() = %+v", sc)
	}

	for _, bad := range []string{
		`{"error_rate":2}`, `{"outage":{"mode":"down"}}`, `{"missing_acls":["delete"]}`, `{"unknown":1}`,
		`{"latency":"soon"}`, `{"error_status":404}`, `[1]`, `{"roles":[""]}`,
	} {
		if r := put(bad); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "Invalid configuration") {
			t.Errorf("PUT %s: %d %s", bad, r.status, r.body)
		}
	}
	if sc := e.s.Config(); fmt.Sprint(sc) != fmt.Sprint(got) {
		t.Errorf("a bad PUT changed the configuration: %+v", sc)
	}

	// The outage ends by the server's clock.
	e.clock.Advance(90 * time.Second)
	if o := e.s.Config().Outage; o.Mode != OutageOff {
		t.Errorf("outage after its end: %+v", o)
	}

	r = e.do(http.MethodPost, "/sim/reset", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("reset: %d", r.status)
	}
	got = e.s.Config()
	if got.Hibernating || got.Latency != 0 || got.LatencyJitter != 0 || got.ErrorRate != 0 || got.Outage.Mode != "" ||
		got.DropResponses != 0 || got.DropRate != 0 {
		t.Errorf("faults after reset: %+v", got)
	}
	if got.RateLimit.Requests != 3 || !slices.Equal(got.MissingACLs, []string{"write"}) || got.AccessTokenTTL != Duration(5*time.Minute) {
		t.Errorf("reset changed the setup: %+v", got)
	}
	if r := e.do(http.MethodDelete, "/sim/config", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /sim/config: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/sim/reset", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /sim/reset: %d", r.status)
	}
	if err := (Config{ErrorRate: -1}).Validate(); err == nil {
		t.Error("Validate accepted a negative error rate")
	}
	if n := len(e.s.Requests()); n != 0 {
		t.Errorf("/sim requests recorded: %d", n)
	}
}

func TestRolesAndACLs(t *testing.T) {
	const (
		insertACL = "ACL Exception Insert Failed due to security constraints"
		updateACL = "ACL Exception Update Failed due to security constraints"
		apiACL    = "Failed API level ACL Validation"
	)
	tests := []struct {
		name        string
		roles       []string
		missing     []string
		importCode  int
		importMsg   string
		importDet   string
		incidentGET int // Table API list of incident
		dictGET     int
		probe       int // GET of one staging row
	}{
		{"set up (default)", nil, nil, 201, "", "", 200, 200, 404},
		{"no import_transformer", []string{RoleIntegration}, nil, 403, "User Not Authorized", apiACL, 200, 200, 403},
		{"no ionix_integration", []string{RoleImportTransformer}, nil, 403, "Operation Failed", insertACL, 403, 403, 404},
		{"no roles", []string{}, nil, 403, "User Not Authorized", apiACL, 403, 403, 403},
		{"create ACL missing", nil, []string{ACLCreate}, 403, "Operation Failed", insertACL, 200, 200, 404},
		{"write ACL missing", nil, []string{ACLWrite}, 403, "Operation Failed", updateACL, 200, 200, 404},
		{"no read access", nil, []string{ACLIncidentRead, ACLDictionaryRead}, 201, "", "", 403, 403, 404},
		{"itil reads without the ACL", []string{RoleIntegration, RoleImportTransformer, RoleITIL}, []string{ACLIncidentRead}, 201, "", "", 200, 200, 404},
		{"admin passes everything", []string{RoleAdmin}, []string{ACLCreate, ACLWrite, ACLIncidentRead, ACLDictionaryRead}, 201, "", "", 200, 200, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{Roles: tt.roles, MissingACLs: tt.missing})
			tok := e.token().AccessToken
			r, _ := e.postWith(tok, item("ionix:1"))
			if r.status != tt.importCode {
				t.Fatalf("import: %d %s", r.status, r.body)
			}
			if tt.importCode == 403 {
				var er errorReply
				r.json(t, &er)
				if er.Error.Message != tt.importMsg || er.Error.Detail != tt.importDet || er.Status != "failure" {
					t.Errorf("import body = %s", r.body)
				}
				if n := len(e.s.Incidents()); n != 0 {
					t.Errorf("%d incidents after a refused import", n)
				}
				if e.lastRequest().Note == "" {
					t.Error("no note in the request log")
				}
			}
			if r := e.do(http.MethodGet, "/api/now/table/incident?sysparm_query=correlation_id=ionix:1", bearer(tok), nil); r.status != tt.incidentGET {
				t.Errorf("incident read: %d %s", r.status, r.body)
			} else if r.status == 403 && !strings.Contains(string(r.body), "Insufficient rights to query records") {
				t.Errorf("incident read body: %s", r.body)
			}
			if r := e.do(http.MethodGet, "/api/now/table/sys_dictionary", bearer(tok), nil); r.status != tt.dictGET {
				t.Errorf("dictionary read: %d %s", r.status, r.body)
			}
			r = e.do(http.MethodGet, "/api/now/import/u_ionix_action_item/00000000000000000000000000000000", bearer(tok), nil)
			if r.status != tt.probe {
				t.Errorf("staging row read: %d %s", r.status, r.body)
			}
			if tt.importCode == 201 && tt.incidentGET == 403 {
				// A record the user may not read is not found.
				sysID := e.s.Incidents()[0].SysID
				if r := e.do(http.MethodGet, "/api/now/table/incident/"+sysID, bearer(tok), nil); r.status != 404 {
					t.Errorf("incident record read: %d", r.status)
				}
			}
		})
	}
	t.Run("switch at run time", func(t *testing.T) {
		e := newEnv(t, Options{})
		tok := e.token().AccessToken
		c := e.s.Config()
		c.MissingACLs = []string{ACLCreate}
		if err := e.s.SetConfig(c); err != nil {
			t.Fatal(err)
		}
		if r, _ := e.postWith(tok, item("ionix:1")); r.status != 403 {
			t.Errorf("import with the create ACL missing: %d", r.status)
		}
		c.MissingACLs = nil
		_ = e.s.SetConfig(c)
		if r, _ := e.postWith(tok, item("ionix:1")); r.status != 201 {
			t.Errorf("import after the ACL was created: %d", r.status)
		}
	})
	t.Run("staging row read of an unknown table", func(t *testing.T) {
		e := newEnv(t, Options{})
		r := e.do(http.MethodGet, "/api/now/import/u_other/00000000000000000000000000000000", bearer(e.token().AccessToken), nil)
		if r.status != 404 || !strings.Contains(string(r.body), "Invalid table u_other") {
			t.Errorf("%d %s", r.status, r.body)
		}
		if e.s.ImportCount() != 0 {
			t.Errorf("a staging row read counted as an import")
		}
	})
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, Options{RateLimit: RateLimit{Requests: 2, Window: Duration(10 * time.Second)}})
	tok := e.token().AccessToken
	start := e.clock.Now()
	resetAt := strconv.FormatInt(start.Add(10*time.Second).Unix(), 10)
	for i := range 2 {
		r, _ := e.postWith(tok, item(fmt.Sprint("ionix:", i)))
		if r.status != 201 || r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Reset") != resetAt ||
			r.header.Get("X-RateLimit-Rule") == "" || r.header.Get("Retry-After") != "" {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	e.clock.Advance(3*time.Second + time.Millisecond)
	for _, path := range []string{"/api/now/import/u_ionix_action_item", "/api/now/table/incident"} {
		method := http.MethodPost
		if strings.Contains(path, "table") {
			method = http.MethodGet
		}
		r := e.do(method, path, bearer(tok), strings.NewReader(`{"u_correlation_id":"ionix:x"}`))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "7" || r.header.Get("X-RateLimit-Reset") != resetAt {
			t.Fatalf("%s over the limit: %d %v %s", path, r.status, r.header, r.body)
		}
		var er errorReply
		r.json(t, &er)
		if er.Status != "failure" || er.Error.Message != "Too Many Requests" {
			t.Errorf("429 body: %s", r.body)
		}
		if rec := e.lastRequest(); rec.RetryAfter != 7 || rec.Fault != "rate limited" || rec.Status != 429 {
			t.Errorf("request log: %+v", rec)
		}
	}
	if n := len(e.s.Incidents()); n != 2 {
		t.Errorf("%d incidents", n)
	}
	// Token requests are not limited.
	if tr := e.tokenRequest(passwordForm()); tr.status != 200 {
		t.Errorf("token request while limited: %d", tr.status)
	}
	e.clock.Advance(7 * time.Second)
	if r, _ := e.postWith(tok, item("ionix:2")); r.status != 201 {
		t.Errorf("after the window: %d", r.status)
	}
	// Reset clears the counters.
	_, _ = e.postWith(tok, item("ionix:3"))
	if r, _ := e.postWith(tok, item("ionix:4")); r.status != 429 {
		t.Fatalf("third in the new window: %d", r.status)
	}
	e.s.ResetFaults()
	if r, _ := e.postWith(tok, item("ionix:4")); r.status != 201 {
		t.Errorf("after reset: %d", r.status)
	}
}

func TestHibernation(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.token().AccessToken
	_ = e.s.SetConfig(Config{Hibernating: true})
	for _, tt := range []struct{ method, path string }{
		{http.MethodPost, "/oauth_token.do"},
		{http.MethodPost, "/api/now/import/u_ionix_action_item"},
		{http.MethodGet, "/api/now/table/incident"},
	} {
		r := e.do(tt.method, tt.path, bearer(tok), strings.NewReader(`{}`))
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(r.body), "<title>Instance Hibernating page</title>") {
			t.Errorf("%s %s: %d %v %s", tt.method, tt.path, r.status, r.header, r.body)
		}
		if rec := e.lastRequest(); rec.Fault != "hibernating" || rec.Status != 200 {
			t.Errorf("request log: %+v", rec)
		}
	}
	if r := e.do(http.MethodGet, "/sim/incidents", nil, nil); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("/sim/ while hibernating: %d", r.status)
	}
	if len(e.s.Incidents()) != 0 {
		t.Error("a hibernating instance wrote an incident")
	}
	_ = e.s.SetConfig(Config{})
	if r, _ := e.postWith(tok, item("ionix:1")); r.status != 201 {
		t.Errorf("awake: %d", r.status)
	}
}

func TestLatency(t *testing.T) {
	e := newEnv(t, Options{Latency: 30 * time.Millisecond, LatencyJitter: 20 * time.Millisecond, Seed: 1})
	start := time.Now()
	tok := e.token().AccessToken
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("token request took %v", d)
	}
	rec := e.lastRequest()
	ms, err := time.ParseDuration(strings.TrimPrefix(rec.Fault, "latency "))
	if err != nil || ms < 30*time.Millisecond || ms >= 50*time.Millisecond {
		t.Errorf("fault %q", rec.Fault)
	}
	// A client that gives up is not answered.
	_ = e.s.SetConfig(Config{Latency: Duration(time.Hour)})
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/now/import/u_ionix_action_item", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	client := e.ts.Client()
	client.Timeout = 50 * time.Millisecond
	if _, err := client.Do(req); err == nil {
		t.Fatal("answered during an hour of latency")
	}
	testkit.WaitFor(t, 5*time.Second, "the abandoned request to be recorded", func() bool { return len(e.s.Requests()) >= 2 })
	if rec := e.lastRequest(); rec.Status != 0 || !strings.Contains(rec.Fault, "client gone") {
		t.Errorf("abandoned request: %+v", rec)
	}
}

func TestErrorRate(t *testing.T) {
	run := func(e *env) []int {
		tok := e.token().AccessToken
		var out []int
		for i := range 20 {
			r, _ := e.postWith(tok, item(fmt.Sprint("ionix:", i)))
			out = append(out, r.status)
		}
		return out
	}
	e := newEnv(t, Options{ErrorRate: 0.5, ErrorStatus: 503, Seed: 42})
	first := run(e)
	failed := 0
	for _, s := range first {
		switch s {
		case 503:
			failed++
		case 201:
		default:
			t.Fatalf("status %d", s)
		}
	}
	if failed == 0 || failed == 20 {
		t.Fatalf("statuses %v: not a fraction", first)
	}
	if n := len(e.s.Incidents()); n != 20-failed {
		t.Errorf("%d incidents, want %d: an injected error wrote", n, 20-failed)
	}
	faults := 0
	for _, r := range e.s.Requests() {
		if r.Fault == "injected error 503" && r.Status == 503 {
			faults++
		}
	}
	if faults != failed {
		t.Errorf("%d faults in the request log, want %d", faults, failed)
	}
	// The same seed makes the same draws.
	if again := run(newEnv(t, Options{ErrorRate: 0.5, ErrorStatus: 503, Seed: 42})); !slices.Equal(again, first) {
		t.Errorf("same seed, other draws:\n%v\n%v", first, again)
	}
	_ = e.s.SetConfig(Config{ErrorRate: 0.5, ErrorStatus: 503, Seed: 42})
	if again := run(e); !slices.Equal(again, first) {
		t.Errorf("SetConfig did not restart the draws:\n%v\n%v", first, again)
	}
	_ = e.s.SetConfig(Config{ErrorRate: 1})
	if r, _ := e.post(item("ionix:x")); r.status != 500 {
		t.Errorf("default error status: %d", r.status)
	}
}

func TestOutage(t *testing.T) {
	e := newEnv(t, Options{Outage: Outage{Mode: Outage503, For: Duration(time.Minute)}})
	r := e.tokenRequest(passwordForm())
	if r.status != 503 {
		t.Errorf("token request: %d", r.status)
	}
	if rec := e.lastRequest(); rec.Fault != "outage: 503" || rec.Status != 503 {
		t.Errorf("request log: %+v", rec)
	}
	e.clock.Advance(time.Minute)
	at := e.token().AccessToken
	if r, _ := e.postWith(at, item("ionix:1")); r.status != 201 {
		t.Errorf("after the outage: %d", r.status)
	}

	t.Run("reset until switched off", func(t *testing.T) {
		_ = e.s.SetConfig(Config{Outage: Outage{Mode: OutageReset}})
		e.clock.Advance(24 * time.Hour)
		if _, err := e.tryPost(at, item("ionix:2")); err == nil {
			t.Fatal("answered during an outage")
		}
		if rec := e.lastRequest(); rec.Status != 0 || rec.Fault != "outage: connection reset" {
			t.Errorf("request log: %+v", rec)
		}
		e.s.ResetFaults()
		if resp, err := e.tryPost(e.token().AccessToken, item("ionix:2")); err != nil || resp.StatusCode != 201 {
			t.Errorf("after reset: %v", err)
		}
	})
}

func TestDropAfterCommit(t *testing.T) {
	e := newEnv(t, Options{DropResponses: 1})
	tok := e.token().AccessToken
	if _, err := e.tryPost(tok, item("ionix:1")); err == nil {
		t.Fatal("the response was not dropped")
	} else if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") {
		t.Errorf("client saw %v, want EOF", err)
	}
	rec := e.lastRequest()
	if rec.Status != 0 || rec.ImportStatus != "inserted" || rec.Number != "INC0010001" || rec.Fault != "response dropped after commit" {
		t.Errorf("request log: %+v", rec)
	}
	if n := len(e.s.Incidents()); n != 1 {
		t.Fatalf("%d incidents: the import was not committed", n)
	}
	if c := e.s.Config(); c.DropResponses != 0 {
		t.Errorf("drop_responses left: %d", c.DropResponses)
	}
	_, ir := e.postWith(tok, item("ionix:1"))
	if ir.Result[0].Status != "updated" || len(e.s.Incidents()) != 1 {
		t.Errorf("retry: %+v", ir)
	}
	if n := e.s.ImportCount(); n != 2 {
		t.Errorf("ImportCount = %d", n)
	}
	_ = e.s.SetConfig(Config{DropRate: 1})
	if _, err := e.tryPost(tok, item("ionix:2")); err == nil {
		t.Error("drop_rate 1 answered")
	}
}

func TestStagingProfiles(t *testing.T) {
	lengths := func(e *env) map[string]string {
		r := e.do(http.MethodGet, "/api/now/table/sys_dictionary?sysparm_query="+url.QueryEscape("name=u_ionix_action_item"),
			bearer(e.token().AccessToken), nil)
		var body struct{ Result []map[string]string }
		r.json(t, &body)
		got := map[string]string{}
		for _, row := range body.Result {
			got[strings.TrimPrefix(row["element"], "u_")] = row["max_length"]
		}
		return got
	}
	e := newEnv(t, Options{})
	if got := lengths(e); got["name"] != "4000" || got["body"] != "4000" || got["correlation_id"] != "100" || got["category"] != "40" {
		t.Errorf("set up: %v", got)
	}
	e = newEnv(t, Options{StagingAsCreated: true})
	for col, n := range lengths(e) {
		if n != "40" {
			t.Errorf("as created: %s has %s", col, n)
		}
	}
	cid := "ionix:" + strings.Repeat("7", 60)
	e.post(item(cid))
	if got := e.s.Incidents()[0].CorrelationID; got != cid[:40] {
		t.Errorf("correlation_id as created = %q", got)
	}
}
