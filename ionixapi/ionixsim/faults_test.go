package ionixsim_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

func TestFaultsInOrder(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetOpen(items(3)...)
	e.sim.FailNext(2, http.StatusServiceUnavailable)
	e.sim.ServeHTMLNext(1)
	e.sim.FailNext(1, http.StatusTooManyRequests)
	e.sim.FailNext(1, http.StatusOK)
	if n := e.sim.PendingFaults(); n != 5 {
		t.Fatalf("%d pending faults", n)
	}

	// A request to another path does not use a fault.
	if r := e.do(http.MethodGet, "/elsewhere/", nil); r.status != http.StatusNotFound {
		t.Errorf("other path: %d", r.status)
	}
	noCreds := map[string]string{} // faults come before authentication
	var got []int
	var bodies []string
	for range 6 {
		r := e.do(http.MethodGet, ionixsim.OpenPath, noCreds)
		got = append(got, r.status)
		bodies = append(bodies, string(r.body))
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") != "1" {
			t.Errorf("429 with Retry-After %q", r.header.Get("Retry-After"))
		}
		if strings.Contains(string(r.body), "maintenance") && !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("maintenance page as %q", r.header.Get("Content-Type"))
		}
	}
	if want := []int{503, 503, 200, 429, 200, 401}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if bodies[2] != ionixsim.MaintenancePage {
		t.Errorf("third answer %q", bodies[2])
	}
	if bodies[3] != `{"detail":"Request was throttled. Expected available in 1 second."}` {
		t.Errorf("429 body %s", bodies[3])
	}
	if bodies[4] != `{"detail":"OK"}` {
		t.Errorf("2xx fault body %s", bodies[4])
	}
	var faults []string
	for _, r := range e.sim.Requests() {
		faults = append(faults, r.Fault)
	}
	if want := []string{"", "status 503", "status 503", "maintenance page", "status 429", "status 200", ""}; !slices.Equal(faults, want) {
		t.Errorf("recorded faults %q, want %q", faults, want)
	}

	e.sim.FailNext(3, 500)
	e.sim.ClearFaults()
	if r := e.do(http.MethodGet, ionixsim.OpenPath, nil); r.status != http.StatusOK || e.sim.PendingFaults() != 0 {
		t.Errorf("after ClearFaults: %d", r.status)
	}
}

func TestRetryAfterOption(t *testing.T) {
	for _, tt := range []struct {
		ra   time.Duration
		want string
		body string
	}{
		{ra: 0, want: "1", body: "1 second."},
		{ra: 1500 * time.Millisecond, want: "2", body: "2 seconds."},
		{ra: time.Minute, want: "60", body: "60 seconds."},
		{ra: -1, want: "", body: `"Request was throttled."`},
	} {
		t.Run(tt.ra.String(), func(t *testing.T) {
			e := newEnv(t, ionixsim.Options{RetryAfter: tt.ra})
			e.sim.FailNext(1, http.StatusTooManyRequests)
			r := e.do(http.MethodGet, ionixsim.ClosedPath, nil)
			if r.status != 429 || r.header.Get("Retry-After") != tt.want || !strings.Contains(string(r.body), tt.body) {
				t.Errorf("%d, Retry-After %q, body %s", r.status, r.header.Get("Retry-After"), r.body)
			}
		})
	}
}

func TestDropNext(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.DropNext(1)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+ionixsim.OpenPath, nil)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true // no silent retry by net/http
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("dropped request answered %d", resp.StatusCode)
	}
	if r := e.do(http.MethodGet, ionixsim.OpenPath, nil); r.status != 200 {
		t.Fatalf("after the drop: %d", r.status)
	}
	reqs := e.sim.Requests()
	if len(reqs) != 2 || reqs[0].Status != 0 || reqs[0].Fault != "dropped" {
		t.Errorf("requests %+v", reqs)
	}
}

func TestLatency(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetLatency(60 * time.Millisecond)
	start := time.Now()
	if r := e.do(http.MethodGet, ionixsim.OpenPath, nil); r.status != 200 {
		t.Fatal(r.status)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("answered after %s", d)
	}
	e.sim.SetLatency(0)
	start = time.Now()
	e.do(http.MethodGet, ionixsim.OpenPath, nil)
	if d := time.Since(start); d >= 60*time.Millisecond {
		t.Errorf("latency 0: answered after %s", d)
	}
}

func TestRequests(t *testing.T) {
	e := newEnv(t, ionixsim.Options{})
	e.sim.SetOpen(items(5)...)
	before := time.Now()
	e.do(http.MethodGet, ionixsim.OpenPath+"?limit=2&offset=2", nil)
	e.do(http.MethodGet, ionixsim.ClosedPath, map[string]string{"Authorization": "Bearer nope", "X-Account-Name": "acme"})
	reqs := e.sim.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "GET" || r.Path != ionixsim.OpenPath || r.Query.Get("limit") != "2" || r.Query.Get("offset") != "2" ||
		r.Status != 200 || r.At.Before(before) {
		t.Errorf("request %+v", r)
	}
	if reqs[1].Status != 401 || reqs[1].Path != ionixsim.ClosedPath {
		t.Errorf("request %+v", reqs[1])
	}
	reqs[0].Query.Set("limit", "changed") // a copy
	if e.sim.Requests()[0].Query.Get("limit") != "2" {
		t.Error("Requests returned the log itself")
	}
	e.sim.ResetRequests()
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("%d requests after reset", n)
	}
	if o := e.sim.Options(); o.Token != ionixsim.DefaultToken || o.Account != ionixsim.DefaultAccount ||
		o.MaxPageSize != ionixsim.DefaultMaxPageSize || o.RetryAfter != ionixsim.DefaultRetryAfter {
		t.Errorf("defaults %+v", o)
	}
}
