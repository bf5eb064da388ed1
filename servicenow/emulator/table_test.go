package emulator

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/internal/testkit"
)

func TestTableQuery(t *testing.T) {
	e := newEnv(t, Options{})
	e.post(item("ionix:a", "u_category", "PKI"))
	e.post(item("ionix:A-b", "u_category", "DNS"))
	e.post(item("ionix:c", "u_category", "Cloud", "u_state", "6"))
	tok := e.token().AccessToken

	numbers := func(t *testing.T, query url.Values) []string {
		t.Helper()
		r := e.do(http.MethodGet, "/api/now/table/incident?"+query.Encode(), bearer(tok), nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d (%s)", r.status, r.body)
		}
		var body struct{ Result []map[string]string }
		r.json(t, &body)
		var out []string
		for _, row := range body.Result {
			out = append(out, row["number"])
		}
		return out
	}
	q := func(s string) url.Values { return url.Values{"sysparm_query": {s}} }
	tests := []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"all", nil, []string{"INC0010001", "INC0010002", "INC0010003"}},
		{"correlation_id", q("correlation_id=ionix:a"), []string{"INC0010001"}},
		{"equality ignores case", q("correlation_id=IONIX:A"), []string{"INC0010001"}},
		{"number", q("number=INC0010002"), []string{"INC0010002"}},
		{"no match", q("correlation_id=ionix:zzz"), nil},
		{"unknown field is dropped: every row", q("u_correlation_id=ionix:a"), []string{"INC0010001", "INC0010002", "INC0010003"}},
		{"dropped condition with a valid one", q("nonsense=1^category=DNS"), []string{"INC0010002"}},
		{"and", q("categoryLIKEc^state=1"), nil},
		{"or", q("category=PKI^ORcategory=Cloud"), []string{"INC0010001", "INC0010003"}},
		{"new query", q("category=PKI^NQstate=6"), []string{"INC0010001", "INC0010003"}},
		{"not equal", q("state!=6"), []string{"INC0010001", "INC0010002"}},
		{"starts with", q("correlation_idSTARTSWITHionix:a"), []string{"INC0010001", "INC0010002"}},
		{"ends with", q("correlation_idENDSWITH-B"), []string{"INC0010002"}},
		{"in", q("categoryINpki,dns"), []string{"INC0010001", "INC0010002"}},
		{"is empty", q("close_notesISNOTEMPTY"), nil},
		{"order by is ignored", q("category=DNS^ORDERBYnumber"), []string{"INC0010002"}},
		{"limit and offset", url.Values{"sysparm_limit": {"1"}, "sysparm_offset": {"1"}}, []string{"INC0010002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := numbers(t, tt.query); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("fields, strings and total count", func(t *testing.T) {
		r := e.do(http.MethodGet, "/api/now/table/incident?sysparm_fields=number,priority,nothing&sysparm_limit=1", bearer(tok), nil)
		var body struct{ Result []map[string]any }
		r.json(t, &body)
		if len(body.Result) != 1 || len(body.Result[0]) != 2 || body.Result[0]["priority"] != "2" {
			t.Errorf("result = %v", body.Result)
		}
		if got := r.header.Get("X-Total-Count"); got != "3" {
			t.Errorf("X-Total-Count = %q", got)
		}
	})
	t.Run("every incident field as a string", func(t *testing.T) {
		r := e.do(http.MethodGet, "/api/now/table/incident?sysparm_query=number%3DINC0010003", bearer(tok), nil)
		var body struct{ Result []map[string]any }
		r.json(t, &body)
		row := body.Result[0]
		for _, f := range incidentFields {
			if _, ok := row[f].(string); !ok {
				t.Errorf("field %s = %#v, want a string", f, row[f])
			}
		}
		if row["active"] != "false" || row["opened_at"] != "2025-03-01 10:00:00" {
			t.Errorf("row = %v", row)
		}
	})
	t.Run("unknown table", func(t *testing.T) {
		r := e.do(http.MethodGet, "/api/now/table/nothing", bearer(tok), nil)
		var er errorReply
		r.json(t, &er)
		if r.status != http.StatusBadRequest || er.Error.Message != "Invalid table nothing" {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("needs a token", func(t *testing.T) {
		if r := e.do(http.MethodGet, "/api/now/table/incident", nil, nil); r.status != http.StatusUnauthorized {
			t.Errorf("status %d", r.status)
		}
	})
	t.Run("POST is not emulated", func(t *testing.T) {
		if r := e.do(http.MethodPost, "/api/now/table/incident", bearer(tok), strings.NewReader(`{}`)); r.status != http.StatusMethodNotAllowed {
			t.Errorf("status %d", r.status)
		}
	})
	t.Run("delete by sys_id", func(t *testing.T) {
		id := e.s.Incidents()[0].SysID
		if r := e.do(http.MethodDelete, "/api/now/table/incident/"+id, bearer(tok), nil); r.status != http.StatusNoContent {
			t.Fatalf("delete: %d", r.status)
		}
		if r := e.do(http.MethodGet, "/api/now/table/incident/"+id, bearer(tok), nil); r.status != http.StatusNotFound {
			t.Errorf("get after delete: %d", r.status)
		}
		if r := e.do(http.MethodDelete, "/api/now/table/incident/"+id, bearer(tok), nil); r.status != http.StatusNotFound {
			t.Errorf("second delete: %d", r.status)
		}
		if got := numbers(t, nil); !slices.Equal(got, []string{"INC0010002", "INC0010003"}) {
			t.Errorf("after delete: %v", got)
		}
	})
}

func TestDictionary(t *testing.T) {
	for _, max := range []int{CreatedMaxLength, 4000} {
		e := newEnv(t, Options{NameBodyMaxLength: max})
		r := e.do(http.MethodGet, "/api/now/table/sys_dictionary?sysparm_query="+url.QueryEscape("name=u_ionix_action_item^elementISNOTEMPTY"),
			bearer(e.token().AccessToken), nil)
		var body struct{ Result []map[string]string }
		r.json(t, &body)
		got := map[string]string{}
		for _, row := range body.Result {
			got[row["element"]] = row["max_length"]
		}
		if got["u_name"] != strconv.Itoa(max) || got["u_body"] != strconv.Itoa(max) || got["u_category"] != "40" || got["u_correlation_id"] != "100" {
			t.Errorf("max %d: lengths = %v", max, got)
		}
	}
}

func TestSimEndpoints(t *testing.T) {
	e := newEnv(t, Options{})
	e.post(item("ionix:sim"))
	var reqs []Request
	e.do(http.MethodGet, "/sim/requests", nil, nil).json(t, &reqs)
	if len(reqs) != 2 || reqs[0].Path != "/oauth_token.do" || reqs[1].ImportStatus != "inserted" ||
		reqs[1].Number != "INC0010001" || reqs[1].Fields["u_correlation_id"] != "ionix:sim" || !reqs[1].At.Equal(e.clock.Now()) {
		t.Errorf("/sim/requests = %+v", reqs)
	}
	var incs []Incident
	e.do(http.MethodGet, "/sim/incidents", nil, nil).json(t, &incs)
	if len(incs) != 1 || incs[0].Number != "INC0010001" || incs[0].CorrelationID != "ionix:sim" {
		t.Errorf("/sim/incidents = %+v", incs)
	}
	if n := len(e.s.Requests()); n != 2 {
		t.Errorf("/sim requests were recorded: %d requests", n)
	}
	if r := e.do(http.MethodPost, "/sim/incidents", nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /sim/incidents: %d", r.status)
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	logs := &testkit.Buffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	go func() { done <- Serve(ctx, ln, New(Options{}), log) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/sim/incidents")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if !strings.Contains(logs.String(), `"path":"/sim/incidents"`) {
		t.Errorf("request not logged: %s", logs.String())
	}

	t.Run("ListenAndServe reports a bad address", func(t *testing.T) {
		if err := ListenAndServe(t.Context(), "127.0.0.1:-1", New(Options{}), zerolog.Nop()); err == nil {
			t.Error("no error")
		}
	})
}
