package servicenow

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/servicenow/emulator"
)

func TestFindIncidents(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	c := e.client(e.config())
	ctx := t.Context()
	ids := []string{"ionix:a", "ionix:a&b=c d+e#f%", "ionix:x^y", "ionix:xy"}
	for _, id := range ids {
		if _, err := c.Import(ctx, record(id, "u_name", "title of "+id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		cid  string
		want []string
	}{
		{"ionix:a", []string{"INC0010001"}},
		{"IONIX:A", nil}, // ServiceNow answers INC0010001 (it compares case-insensitively)
		{"ionix:a&b=c d+e#f%", []string{"INC0010002"}},
		{"ionix:x^y", []string{"INC0010003"}}, // queried by prefix, filtered exactly
		{"ionix:xy", []string{"INC0010004"}},
		{"ionix:none", nil},
	} {
		t.Run(tt.cid, func(t *testing.T) {
			incs, err := c.FindIncidents(ctx, tt.cid)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, inc := range incs {
				got = append(got, inc.Number)
				if inc.CorrelationID != tt.cid {
					t.Errorf("returned %s with correlation id %q", inc.Number, inc.CorrelationID)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("numbers = %v, want %v", got, tt.want)
			}
			if tt.cid == "IONIX:A" && !strings.Contains(e.logs.String(), `"rows":1,"dropped":1`) {
				t.Errorf("the row ServiceNow matched case-insensitively was not dropped: %s", e.logs)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		incs, err := c.FindIncidents(ctx, "ionix:xy")
		if err != nil || len(incs) != 1 {
			t.Fatal(incs, err)
		}
		got := incs[0]
		want := Incident{SysID: got.SysID, Number: "INC0010004", ShortDescription: "title of ionix:xy", Description: "details",
			Category: "PKI", Impact: "2", Urgency: "1", Priority: "2", State: "1", OpenedAt: "2025-03-01 10:00:00", CorrelationID: "ionix:xy"}
		if got != want || len(got.SysID) != 32 {
			t.Errorf("incident\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("request", func(t *testing.T) {
		if _, err := c.FindIncidents(ctx, "ionix:a&b=c d+e#f%"); err != nil {
			t.Fatal(err)
		}
		reqs := e.emu.Requests()
		q, err := url.ParseQuery(reqs[len(reqs)-1].Query)
		if err != nil {
			t.Fatal(err)
		}
		if q.Get("sysparm_query") != "correlation_id=ionix:a&b=c d+e#f%" || q.Get("sysparm_limit") != "1000" {
			t.Errorf("query = %v", q)
		}
	})
	t.Run("empty correlation id", func(t *testing.T) {
		if _, err := c.FindIncidents(ctx, ""); err == nil {
			t.Error("no error")
		}
	})
}

// TestFindIncidentsDroppedQuery: when ServiceNow drops the condition (a
// field the user may not read, say) it answers every row.
func TestFindIncidentsDroppedQuery(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.setStub(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"result":[
			{"sys_id":"1","number":"INC0000001","correlation_id":""},
			{"sys_id":"2","number":"INC0000002","correlation_id":"ionix:other"},
			{"sys_id":"3","number":"INC0000003","correlation_id":"ionix:42","state":{"value":"6","link":"x"},"impact":2}
		]}`)
	})
	c := e.client(e.config())
	incs, err := c.FindIncidents(t.Context(), "ionix:42")
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 1 || incs[0].Number != "INC0000003" || incs[0].State != "6" || incs[0].Impact != "2" {
		t.Errorf("incidents = %+v", incs)
	}
	if want := `"dropped":2`; !strings.Contains(e.logs.String(), want) {
		t.Errorf("log lacks %s: %s", want, e.logs)
	}
}

func TestFindIncidentsErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		status  int
		body    string
		want    error
		wantFix string
	}{
		{"no read access", 403, `{"error":{"message":"Operation Failed"},"status":"failure"}`, ErrConfiguration, fixReadForbidden},
		{"unavailable", 503, `{}`, ErrTransient, ""},
		{"not JSON", 200, `<`, ErrTransient, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			e.setStub(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tt.status, tt.body) })
			_, err := e.client(e.config()).FindIncidents(t.Context(), "ionix:1")
			var se *Error
			if !errors.Is(err, tt.want) || !errors.As(err, &se) || se.Fix != tt.wantFix || se.Op != OpFindIncidents {
				t.Errorf("FindIncidents: %#v", err)
			}
		})
	}
}

func TestStagingFieldLengths(t *testing.T) {
	for _, max := range []int{emulator.CreatedMaxLength, 4000} {
		e := newEnv(t, emulator.Options{NameBodyMaxLength: max})
		got, err := e.client(e.config()).StagingFieldLengths(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got["u_name"] != max || got["u_body"] != max || got["u_correlation_id"] != 100 || got["u_category"] != 40 {
			t.Errorf("max %d: lengths = %v", max, got)
		}
	}
}
