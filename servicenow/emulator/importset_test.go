package emulator

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestImportResponseShape(t *testing.T) {
	e := newEnv(t, Options{})
	r, ir := e.post(item("ionix:42"))
	if r.status != http.StatusCreated {
		t.Fatalf("status = %d (%s)", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if ir.ImportSet != "ISET0010001" || ir.StagingTable != "u_ionix_action_item" || len(ir.Result) != 1 {
		t.Fatalf("response = %+v", ir)
	}
	res := ir.Result[0]
	if res.TransformMap != "ionix_action_item" || res.Table != "incident" || res.DisplayName != "number" ||
		res.DisplayValue != "INC0010001" || res.Status != "inserted" {
		t.Errorf("result = %+v", res)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(res.SysID) {
		t.Errorf("sys_id = %q", res.SysID)
	}
	if want := e.ts.URL + "/api/now/table/incident/" + res.SysID; res.RecordLink != want {
		t.Errorf("record_link = %q, want %q", res.RecordLink, want)
	}
	// The record link resolves.
	rr := e.do(http.MethodGet, strings.TrimPrefix(res.RecordLink, e.ts.URL), bearer(e.token().AccessToken), nil)
	if rr.status != http.StatusOK || !strings.Contains(string(rr.body), "INC0010001") {
		t.Errorf("record link: %d %s", rr.status, rr.body)
	}

	// The import set stays the same during the day and changes the next.
	_, ir = e.post(item("ionix:43"))
	if ir.ImportSet != "ISET0010001" {
		t.Errorf("second import set = %q", ir.ImportSet)
	}
	e.clock.Advance(24 * time.Hour)
	_, ir = e.post(item("ionix:44"))
	if ir.ImportSet != "ISET0010002" {
		t.Errorf("next day's import set = %q", ir.ImportSet)
	}
}

func TestCoalesce(t *testing.T) {
	e := newEnv(t, Options{})
	_, first := e.post(item("ionix:7"))
	e.clock.Advance(time.Minute)
	_, second := e.post(item("ionix:7", "u_urgency", "3", "u_name", "renamed"))
	if first.Result[0].Status != "inserted" || second.Result[0].Status != "updated" {
		t.Fatalf("statuses = %q, %q; want inserted, updated", first.Result[0].Status, second.Result[0].Status)
	}
	if first.Result[0].SysID != second.Result[0].SysID || second.Result[0].DisplayValue != "INC0010001" {
		t.Errorf("update answered another record: %+v vs %+v", first.Result[0], second.Result[0])
	}
	incs := e.s.Incidents()
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want 1", len(incs))
	}
	inc := incs[0]
	if inc.Inserts != 1 || inc.Updates != 1 || inc.Urgency != "3" || inc.ShortDescription != "renamed" || inc.Priority != "4" {
		t.Errorf("incident = %+v", inc)
	}
	if !inc.UpdatedAt.After(inc.CreatedAt) {
		t.Errorf("UpdatedAt %v not after CreatedAt %v", inc.UpdatedAt, inc.CreatedAt)
	}

	t.Run("same record twice updates", func(t *testing.T) {
		_, ir := e.post(item("ionix:7", "u_urgency", "3", "u_name", "renamed"))
		if s := ir.Result[0].Status; s != "updated" {
			t.Errorf("status = %q, want updated", s)
		}
	})
	t.Run("coalesce ignores case, as the database does", func(t *testing.T) {
		_, ir := e.post(item("IONIX:7"))
		if s, n := ir.Result[0].Status, ir.Result[0].DisplayValue; s != "updated" || n != "INC0010001" {
			t.Errorf("status %q number %q, want updated INC0010001", s, n)
		}
	})
	t.Run("empty correlation id never coalesces", func(t *testing.T) {
		_, a := e.post(item(""))
		_, b := e.post(item(""))
		if a.Result[0].Status != "inserted" || b.Result[0].Status != "inserted" || a.Result[0].SysID == b.Result[0].SysID {
			t.Errorf("results %+v, %+v; want two inserts", a.Result[0], b.Result[0])
		}
	})
	t.Run("empty values do not overwrite", func(t *testing.T) {
		_, ir := e.post(map[string]string{"u_correlation_id": "ionix:7", "u_name": "", "u_state": "6", "u_close_notes": "closed in IONIX"})
		if ir.Result[0].Status != "updated" {
			t.Fatalf("status = %q", ir.Result[0].Status)
		}
		inc := e.s.Incidents()[0]
		if inc.ShortDescription != "Expired certificate on IONIX:7" || inc.State != "6" || inc.CloseNotes != "closed in IONIX" {
			t.Errorf("incident = %+v", inc)
		}
	})
}

// TestCarelessTransformMaps: a transform map without Coalesce on
// correlation_id, or without the correlation_id field map, inserts a new
// incident for every re-post; both are switches at construction and at run time.
func TestCarelessTransformMaps(t *testing.T) {
	tests := []struct {
		name          string
		opts          Options
		switchOn      func(c *Config) // at run time instead, when set
		correlationID string          // what the incidents carry
	}{
		{"Coalesce not ticked", Options{NoCoalesce: true}, nil, "ionix:9"},
		{"correlation_id not mapped", Options{UnmappedCorrelationID: true}, nil, ""},
		{"Coalesce switched off at run time", Options{}, func(c *Config) { c.NoCoalesce = true }, "ionix:9"},
		{"mapping dropped at run time", Options{}, func(c *Config) { c.UnmappedCorrelationID = true }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			if tt.switchOn != nil {
				c := e.s.Config()
				tt.switchOn(&c)
				if err := e.s.SetConfig(c); err != nil {
					t.Fatal(err)
				}
			}
			_, a := e.post(item("ionix:9"))
			_, b := e.post(item("ionix:9", "u_urgency", "2"))
			if a.Result[0].Status != "inserted" || b.Result[0].Status != "inserted" || a.Result[0].SysID == b.Result[0].SysID {
				t.Fatalf("results %+v, %+v; want two inserts", a.Result[0], b.Result[0])
			}
			incs := e.s.Incidents()
			if len(incs) != 2 {
				t.Fatalf("%d incidents, want 2", len(incs))
			}
			for _, inc := range incs {
				if inc.CorrelationID != tt.correlationID {
					t.Errorf("%s: correlation id %q, want %q", inc.Number, inc.CorrelationID, tt.correlationID)
				}
			}
		})
	}
	t.Run("the switches over /sim/config", func(t *testing.T) {
		e := newEnv(t, Options{})
		r := e.do(http.MethodPut, "/sim/config", nil, strings.NewReader(`{"no_coalesce": true, "unmapped_correlation_id": true}`))
		var c Config
		r.json(t, &c)
		if r.status != http.StatusOK || !c.NoCoalesce || !c.UnmappedCorrelationID {
			t.Fatalf("PUT /sim/config: %d %s", r.status, r.body)
		}
	})
}

func TestIgnoreUnchanged(t *testing.T) {
	e := newEnv(t, Options{IgnoreUnchanged: true})
	_, a := e.post(item("ionix:1"))
	_, b := e.post(item("ionix:1"))
	_, c := e.post(item("ionix:1", "u_urgency", "2"))
	got := []string{a.Result[0].Status, b.Result[0].Status, c.Result[0].Status}
	if fmt.Sprint(got) != "[inserted ignored updated]" {
		t.Fatalf("statuses = %v", got)
	}
	if b.Result[0].StatusMessage != "No field values changed" || b.Result[0].DisplayValue != "INC0010001" {
		t.Errorf("ignored result = %+v", b.Result[0])
	}
	if inc := e.s.Incidents()[0]; inc.Updates != 1 {
		t.Errorf("updates = %d, want 1", inc.Updates)
	}
}

func TestOnBefore(t *testing.T) {
	e := newEnv(t, Options{OnBefore: func(row map[string]string) (string, string) {
		switch row["u_category"] {
		case "Reject":
			return "error", "rejected by onBefore script"
		case "Ignore":
			return "ignored", "ignored by script"
		case "Skip":
			return "skipped", ""
		}
		return "", ""
	}})
	for _, tt := range []struct{ category, status, errMsg, statusMsg string }{
		{"Reject", "error", "rejected by onBefore script", ""},
		{"Ignore", "ignored", "", "ignored by script"},
		{"Skip", "skipped", "", ""},
		{"PKI", "inserted", "", ""},
	} {
		t.Run(tt.category, func(t *testing.T) {
			r, ir := e.post(item("ionix:"+tt.category, "u_category", tt.category))
			if r.status != http.StatusCreated {
				t.Fatalf("HTTP %d", r.status)
			}
			res := ir.Result[0]
			if res.Status != tt.status || res.ErrorMessage != tt.errMsg || res.StatusMessage != tt.statusMsg {
				t.Errorf("result = %+v", res)
			}
			if tt.status != "inserted" && (res.SysID != "" || res.RecordLink != "") {
				t.Errorf("a refused row names a record: %+v", res)
			}
		})
	}
	if n := len(e.s.Incidents()); n != 1 {
		t.Errorf("%d incidents, want 1", n)
	}
}

func TestNumbering(t *testing.T) {
	e := newEnv(t, Options{})
	for i := 1; i <= 12; i++ {
		_, ir := e.post(item(fmt.Sprintf("ionix:%d", i)))
		if want := fmt.Sprintf("INC%07d", 10000+i); ir.Result[0].DisplayValue != want {
			t.Fatalf("import %d numbered %q, want %q", i, ir.Result[0].DisplayValue, want)
		}
	}
	// A deleted incident's number is not reused; a re-post inserts anew.
	if !e.s.DeleteIncident("INC0010003") {
		t.Fatal("DeleteIncident(INC0010003) = false")
	}
	if e.s.DeleteIncident("INC0010003") {
		t.Fatal("second DeleteIncident(INC0010003) = true")
	}
	_, ir := e.post(item("ionix:3"))
	if ir.Result[0].Status != "inserted" || ir.Result[0].DisplayValue != "INC0010013" {
		t.Errorf("re-post after delete = %+v", ir.Result[0])
	}
	incs := e.s.Incidents()
	if len(incs) != 12 || incs[0].Number != "INC0010001" || incs[11].Number != "INC0010013" {
		t.Errorf("incidents not in insertion order: %d, first %s, last %s", len(incs), incs[0].Number, incs[len(incs)-1].Number)
	}
}

func TestPriority(t *testing.T) {
	want := map[[2]string]string{
		{"1", "1"}: "1",
		{"1", "2"}: "2", {"2", "1"}: "2",
		{"1", "3"}: "3", {"2", "2"}: "3", {"3", "1"}: "3",
		{"2", "3"}: "4", {"3", "2"}: "4",
		{"3", "3"}: "5",
	}
	e := newEnv(t, Options{})
	for iu, p := range want {
		t.Run(iu[0]+"x"+iu[1], func(t *testing.T) {
			cid := "ionix:p" + iu[0] + iu[1]
			e.post(item(cid, "u_impact", iu[0], "u_urgency", iu[1]))
			inc := find(t, e.s, cid)
			if inc.Impact != iu[0] || inc.Urgency != iu[1] || inc.Priority != p {
				t.Errorf("impact %s urgency %s priority %s, want priority %s", inc.Impact, inc.Urgency, inc.Priority, p)
			}
		})
	}
	t.Run("missing impact and urgency default to 3 and 3", func(t *testing.T) {
		e.post(map[string]string{"u_correlation_id": "ionix:none", "u_name": "x"})
		inc := find(t, e.s, "ionix:none")
		if inc.Impact != "3" || inc.Urgency != "3" || inc.Priority != "5" || inc.State != "1" {
			t.Errorf("incident = %+v", inc)
		}
	})
	t.Run("outside the lookup table", func(t *testing.T) {
		e.post(item("ionix:odd", "u_impact", "7"))
		if inc := find(t, e.s, "ionix:odd"); inc.Impact != "7" || inc.Priority != "5" {
			t.Errorf("incident = %+v", inc)
		}
	})
}

func find(t *testing.T, s *Server, cid string) Incident {
	t.Helper()
	for _, inc := range s.Incidents() {
		if inc.CorrelationID == cid {
			return inc
		}
	}
	t.Fatalf("no incident with correlation id %q", cid)
	return Incident{}
}

func TestTruncation(t *testing.T) {
	long := strings.Repeat("é", 3000) + strings.Repeat("x", 2000) // 5000 runes, multi-byte first
	for _, tt := range []struct {
		name           string
		max            int
		wantShort      int // runes in short_description (incident max 160)
		wantDesc       int
		wantStagedName int
	}{
		{"as ServiceNow creates the columns", CreatedMaxLength, 40, 40, 40},
		{"after the setup step", 4000, 160, 4000, 4000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{NameBodyMaxLength: tt.max})
			r, ir := e.post(item("ionix:long", "u_name", long, "u_body", long, "u_category", strings.Repeat("c", 50)))
			if r.status != http.StatusCreated || ir.Result[0].Status != "inserted" {
				t.Fatalf("truncation is silent, got %d %+v", r.status, ir)
			}
			inc := e.s.Incidents()[0]
			if n := len([]rune(inc.ShortDescription)); n != tt.wantShort {
				t.Errorf("short_description has %d characters, want %d", n, tt.wantShort)
			}
			if n := len([]rune(inc.Description)); n != tt.wantDesc {
				t.Errorf("description has %d characters, want %d", n, tt.wantDesc)
			}
			if !strings.HasPrefix(long, inc.Description) {
				t.Error("description is not a prefix of the body (cut inside a character?)")
			}
			if n := len([]rune(inc.Category)); n != 40 {
				t.Errorf("category has %d characters, want 40", n)
			}
			// The request log keeps what was sent.
			if got := e.s.Requests()[1].Fields["u_name"]; got != long {
				t.Errorf("request log holds %d characters of u_name, want all", len([]rune(got)))
			}
		})
	}
	t.Run("correlation_id holds 100 characters", func(t *testing.T) {
		e := newEnv(t, Options{})
		cid := "ionix:" + strings.Repeat("9", 120)
		e.post(item(cid))
		if got := e.s.Incidents()[0].CorrelationID; got != cid[:100] {
			t.Errorf("correlation_id = %q", got)
		}
	})
	t.Run("FieldMaxLength overrides", func(t *testing.T) {
		e := newEnv(t, Options{FieldMaxLength: map[string]int{"correlation_id": CreatedMaxLength}})
		cid := "ionix:" + strings.Repeat("9", 60)
		e.post(item(cid))
		if got := e.s.Incidents()[0].CorrelationID; got != cid[:40] {
			t.Errorf("correlation_id = %q", got)
		}
	})
}

func TestTransformFields(t *testing.T) {
	e := newEnv(t, Options{FieldPrefix: "x_"})
	rec := map[string]string{
		"x_name": "Weak TLS", "x_body": "details", "x_category": "Vulnerability", "x_impact": "1", "x_urgency": "2",
		"x_opening_date": "2024-12-31 23:59:58", "x_correlation_id": "ionix:abc",
		"u_name": "wrong prefix: dropped", "unknown": "dropped",
	}
	e.post(rec)
	inc := e.s.Incidents()[0]
	want := Incident{SysID: inc.SysID, Number: "INC0010001", ShortDescription: "Weak TLS", Description: "details",
		Category: "Vulnerability", Impact: "1", Urgency: "2", Priority: "2", State: "1",
		OpenedAt: "2024-12-31 23:59:58", CorrelationID: "ionix:abc", Inserts: 1,
		CreatedAt: inc.CreatedAt, UpdatedAt: inc.UpdatedAt}
	if inc != want {
		t.Errorf("incident\n got %+v\nwant %+v", inc, want)
	}
	if got := e.s.Requests()[1].Fields; len(got) != len(rec) {
		t.Errorf("request log fields = %v, want all %d sent", got, len(rec))
	}

	t.Run("an opening date that does not parse leaves opened_at to now", func(t *testing.T) {
		e.post(map[string]string{"x_correlation_id": "ionix:bad-date", "x_opening_date": "2024-12-31T23:59:58Z"})
		if got, want := find(t, e.s, "ionix:bad-date").OpenedAt, e.clock.Now().Format(DateTimeLayout); got != want {
			t.Errorf("opened_at = %q, want %q", got, want)
		}
	})
}

func TestNonStringValues(t *testing.T) {
	e := newEnv(t, Options{})
	r, _ := e.post([]byte(`{"u_correlation_id":"ionix:n","u_impact":1,"u_urgency":2.50,"u_name":true,"u_body":{"b":[1,"x"],"a":null},"u_category":null,"u_state":[6]}`))
	if r.status != http.StatusCreated {
		t.Fatalf("status %d (%s)", r.status, r.body)
	}
	got := e.s.Requests()[1].Fields
	want := map[string]string{"u_correlation_id": "ionix:n", "u_impact": "1", "u_urgency": "2.50", "u_name": "true",
		"u_body": `{"a":null,"b":[1,"x"]}`, "u_category": "", "u_state": "[6]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fields\n got %v\nwant %v", got, want)
	}
	inc := e.s.Incidents()[0]
	if inc.Impact != "1" || inc.Urgency != "2.50" || inc.Priority != "5" || inc.ShortDescription != "true" || inc.Category != "" {
		t.Errorf("incident = %+v", inc)
	}
}

func TestImportErrors(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.token().AccessToken
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		want        int
		wantMessage string
	}{
		{"unknown table", http.MethodPost, "/api/now/import/u_other", "application/json", `{}`, http.StatusNotFound, "Invalid table u_other"},
		{"not JSON", http.MethodPost, "/api/now/import/u_ionix_action_item", "application/json", `name=x`, http.StatusBadRequest, "Exception while reading request"},
		{"JSON array", http.MethodPost, "/api/now/import/u_ionix_action_item", "application/json", `[{"u_name":"x"}]`, http.StatusBadRequest, "Exception while reading request"},
		{"JSON string", http.MethodPost, "/api/now/import/u_ionix_action_item", "application/json", `"x"`, http.StatusBadRequest, "Exception while reading request"},
		{"two objects", http.MethodPost, "/api/now/import/u_ionix_action_item", "application/json", `{}{}`, http.StatusBadRequest, "Exception while reading request"},
		{"empty body", http.MethodPost, "/api/now/import/u_ionix_action_item", "application/json", ``, http.StatusBadRequest, "Exception while reading request"},
		{"form body", http.MethodPost, "/api/now/import/u_ionix_action_item", "application/x-www-form-urlencoded", `u_name=x`, http.StatusUnsupportedMediaType, "Unsupported Media Type"},
		{"GET", http.MethodGet, "/api/now/import/u_ionix_action_item", "", ``, http.StatusMethodNotAllowed, "Method not Supported"},
		{"unknown API", http.MethodGet, "/api/now/v2/nothing", "", ``, http.StatusBadRequest, "Requested URI does not represent any resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Authorization": "Bearer " + tok}
			if tt.contentType != "" {
				h["Content-Type"] = tt.contentType
			}
			r := e.do(tt.method, tt.path, h, strings.NewReader(tt.body))
			if r.status != tt.want {
				t.Fatalf("status = %d, want %d (%s)", r.status, tt.want, r.body)
			}
			var er errorReply
			r.json(t, &er)
			if er.Status != "failure" || er.Error.Message != tt.wantMessage {
				t.Errorf("body = %s", r.body)
			}
		})
	}
	if n := len(e.s.Incidents()); n != 0 {
		t.Errorf("%d incidents after failed imports", n)
	}
	if n := e.s.ImportCount(); n != 8 {
		t.Errorf("ImportCount = %d, want 8", n)
	}
}

func TestConcurrentImports(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.token().AccessToken
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e.postWith(tok, item(fmt.Sprintf("ionix:c%d", i%(n/2)))) // each id twice
		})
	}
	wg.Wait()
	incs := e.s.Incidents()
	if len(incs) != n/2 {
		t.Fatalf("%d incidents, want %d", len(incs), n/2)
	}
	seen := map[string]bool{}
	updates := 0
	for i, inc := range incs {
		if want := fmt.Sprintf("INC%07d", 10001+i); inc.Number != want {
			t.Errorf("incident %d numbered %s, want %s", i, inc.Number, want)
		}
		if seen[inc.CorrelationID] {
			t.Errorf("two incidents for %s", inc.CorrelationID)
		}
		seen[inc.CorrelationID] = true
		updates += inc.Updates
	}
	if updates != n/2 {
		t.Errorf("%d updates, want %d", updates, n/2)
	}
	if got := e.s.ImportCount(); got != n {
		t.Errorf("ImportCount = %d, want %d", got, n)
	}
}

func TestRequestLogBound(t *testing.T) {
	e := newEnv(t, Options{MaxRequests: 3})
	tok := e.token().AccessToken
	for i := range 5 {
		e.postWith(tok, item(fmt.Sprint(i)))
	}
	reqs := e.s.Requests()
	if len(reqs) != 3 || reqs[2].Fields["u_correlation_id"] != "4" || reqs[0].Fields["u_correlation_id"] != "2" {
		t.Errorf("request log = %+v", reqs)
	}
	if e.s.ImportCount() != 5 {
		t.Errorf("ImportCount = %d, want 5", e.s.ImportCount())
	}
}
