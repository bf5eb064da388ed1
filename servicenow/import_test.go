package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/servicenow/emulator"
)

func TestImport(t *testing.T) {
	e := newEnv(t, emulator.Options{OnBefore: func(row map[string]string) (string, string) {
		switch row["u_category"] {
		case "Reject":
			return "error", "Unable to resolve target record"
		case "Ignore":
			return "ignored", "No field values changed"
		case "Skip":
			return "skipped", ""
		}
		return "", ""
	}})
	c := e.client(e.config())
	ctx := t.Context()

	res, err := c.Import(ctx, record("ionix:1"))
	if err != nil {
		t.Fatal(err)
	}
	want := Result{ImportSet: "ISET0010001", StagingTable: "u_ionix_action_item", TransformMap: "ionix_action_item",
		Table: "incident", Number: "INC0010001", SysID: res.SysID, Status: "inserted",
		RecordLink: e.ts.URL + "/api/now/table/incident/" + res.SysID}
	if res != want || len(res.SysID) != 32 {
		t.Errorf("inserted\n got %+v\nwant %+v", res, want)
	}
	res2, err := c.Import(ctx, record("ionix:1", "u_urgency", "3"))
	if err != nil || res2.Status != "updated" || res2.Number != "INC0010001" || res2.SysID != res.SysID {
		t.Errorf("updated: %+v, %v", res2, err)
	}

	for _, tt := range []struct {
		category, status, message string
	}{
		{"Reject", "error", "Unable to resolve target record"},
		{"Ignore", "ignored", "No field values changed"},
		{"Skip", "skipped", ""},
	} {
		t.Run(tt.status, func(t *testing.T) {
			res, err := c.Import(ctx, record("ionix:"+tt.category, "u_category", tt.category))
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("Import: %v, want ErrRejected", err)
			}
			var se *Error
			errors.As(err, &se)
			if se.ResultStatus != tt.status || se.Message != tt.message || se.StatusCode != http.StatusCreated || se.Fix != "" {
				t.Errorf("error = %#v", se)
			}
			if res.Status != tt.status || res.ErrorMessage != tt.message || res.ImportSet == "" {
				t.Errorf("result = %+v", res)
			}
		})
	}

	t.Run("unknown table", func(t *testing.T) {
		cfg := e.config()
		cfg.ImportTable = "u_other"
		_, err := e.client(cfg).Import(ctx, record("ionix:1"))
		var se *Error
		if !errors.Is(err, ErrConfiguration) || !errors.As(err, &se) {
			t.Fatalf("Import: %v", err)
		}
		if se.StatusCode != 404 || se.Fix != fixImportTable || se.Message != "Invalid table u_other" {
			t.Errorf("error = %#v", se)
		}
	})
	t.Run("sends strings as JSON", func(t *testing.T) {
		if _, err := c.Import(ctx, record("ionix:json", "u_body", `quote " and <tag> & ü`)); err != nil {
			t.Fatal(err)
		}
		reqs := e.emu.Requests()
		if got := reqs[len(reqs)-1].Fields["u_body"]; got != `quote " and <tag> & ü` {
			t.Errorf("body arrived as %q", got)
		}
	})
}

// TestImportAnswers covers answers of the Import Set API the emulator does
// not give (yet): one stub per case.
func TestImportAnswers(t *testing.T) {
	const ok = `{"import_set":"ISET0010001","staging_table":"u_ionix_action_item","result":[` +
		`{"transform_map":"ionix_action_item","table":"incident","display_name":"number","display_value":"INC0010001",` +
		`"record_link":"https://x/api/now/table/incident/abc","status":"inserted","sys_id":"abc"}]}`
	jsonAnswer := func(status int, body string, header ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			writeJSON(w, status, body)
		}
	}
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		want       error // nil: success
		wantStatus int
		wantMsg    string
		wantFix    string
		wantRetry  time.Duration
	}{
		{"200 inserted", jsonAnswer(200, ok), nil, 0, "", "", 0},
		{"201 updated", jsonAnswer(201, strings.Replace(ok, "inserted", "updated", 1)), nil, 0, "", "", 0},
		{"hibernating: 200 HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html;charset=UTF-8")
			fmt.Fprint(w, "<html><head><title>\n  Instance Hibernating page\n</title></head><body>wake up</body></html>")
		}, ErrTransient, 200, MsgHibernating, "", 0},
		{"other HTML page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html;charset=UTF-8")
			fmt.Fprint(w, "<html><head><title>ServiceNow login</title></head></html>")
		}, ErrTransient, 200, "HTML page instead of JSON (instance hibernating, or not a ServiceNow API URL): ServiceNow login", "", 0},
		{"rate limited", jsonAnswer(429, `{"error":{"message":"Too Many Requests","detail":"Rate limit exceeded"},"status":"failure"}`,
			"Retry-After", "17", "X-RateLimit-Limit", "100"), ErrTransient, 429, "Too Many Requests: Rate limit exceeded", "", 17 * time.Second},
		{"rate limited, Retry-After as a date", jsonAnswer(429, `{}`, "Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)),
			ErrTransient, 429, "{}", "", -1},
		{"server error", jsonAnswer(500, `{"error":{"message":"Internal error","detail":null},"status":"failure"}`), ErrTransient, 500, "Internal error", "", 0},
		{"unavailable, HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
		}, ErrTransient, 503, "HTML page instead of JSON (instance hibernating, or not a ServiceNow API URL)", "", 0},
		{"bad request", jsonAnswer(400, `{"error":{"message":"Exception while reading request","detail":"The payload is not valid JSON."},"status":"failure"}`),
			ErrRejected, 400, "Exception while reading request: The payload is not valid JSON.", "", 0},
		{"forbidden", jsonAnswer(403, `{"error":{"message":"Operation Failed","detail":"ACL Exception Insert Failed due to security constraints"},"status":"failure"}`),
			ErrConfiguration, 403, "Operation Failed: ACL Exception Insert Failed due to security constraints", fixImportACL, 0},
		{"forbidden: REST endpoint ACL", jsonAnswer(403, `{"error":{"message":"User Not Authorized","detail":"Failed API level ACL Validation"},"status":"failure"}`),
			ErrConfiguration, 403, "User Not Authorized: Failed API level ACL Validation", fixImportRoles, 0},
		{"forbidden: other", jsonAnswer(403, `{"error":{"message":"Forbidden"},"status":"failure"}`),
			ErrConfiguration, 403, "Forbidden", fixImportForbidden, 0},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://acme.service-now.com/api/now/import/u_ionix_action_item", http.StatusMovedPermanently)
		}, ErrConfiguration, 301, "", fixRedirect + " to https://acme.service-now.com/api/now/import/u_ionix_action_item", 0},
		{"no result: no transform map", jsonAnswer(201, `{"import_set":"ISET0010001","staging_table":"u_ionix_action_item","result":[]}`),
			ErrConfiguration, 201, "import answered without a result", fixNoTransformMap, 0},
		{"unknown result status", jsonAnswer(201, strings.Replace(ok, "inserted", "pending", 1)),
			ErrConfiguration, 201, "", fixUnknownStatus, 0},
		{"second map failed", jsonAnswer(201, strings.Replace(ok, `}]}`, `},{"status":"error","error_message":"second map"}]}`, 1)),
			ErrRejected, 201, "second map", "", 0},
		{"unreadable JSON", jsonAnswer(201, `{"result":[`), ErrTransient, 201, "", "", 0},
		{"error body without detail", jsonAnswer(409, `{"error":{"message":"Conflict"},"status":"failure"}`), ErrTransient, 409, "Conflict", "", 0},
		{"plain text", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(502)
			fmt.Fprint(w, "upstream connect error")
		}, ErrTransient, 502, "upstream connect error", "", 0},
		{"empty body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(405) },
			ErrConfiguration, 405, "Method Not Allowed", fixURL, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			e.setStub(tt.handler)
			res, err := e.client(e.config()).Import(t.Context(), record("ionix:1"))
			if tt.want == nil {
				if err != nil || res.Number != "INC0010001" {
					t.Fatalf("Import: %+v, %v", res, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Import: %v, want %v", err, tt.want)
			}
			var se *Error
			errors.As(err, &se)
			if se.StatusCode != tt.wantStatus || se.Fix != tt.wantFix || se.Op != OpImport {
				t.Errorf("error = %#v", se)
			}
			if tt.wantMsg != "" && se.Message != tt.wantMsg {
				t.Errorf("message = %q, want %q", se.Message, tt.wantMsg)
			}
			switch {
			case tt.wantRetry < 0: // a date about an hour ahead
				if se.RetryAfter < 59*time.Minute || se.RetryAfter > time.Hour {
					t.Errorf("RetryAfter = %v", se.RetryAfter)
				}
			case se.RetryAfter != tt.wantRetry:
				t.Errorf("RetryAfter = %v, want %v", se.RetryAfter, tt.wantRetry)
			}
		})
	}
}

func TestImportRequest(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	var got *http.Request
	var body []byte
	e.setStub(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		writeJSON(w, 201, `{"result":[{"status":"inserted"}]}`)
	})
	cfg := e.config()
	cfg.ImportTable = "x_acme_items"
	if _, err := e.client(cfg).Import(t.Context(), map[string]string{"u_name": "a", "u_urgency": "1"}); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/api/now/import/x_acme_items" ||
		got.Header.Get("Content-Type") != "application/json" || got.Header.Get("Accept") != "application/json" ||
		!strings.HasPrefix(got.Header.Get("Authorization"), "Bearer ") {
		t.Errorf("request: %s %s %v", got.Method, got.URL, got.Header)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m["u_name"] != "a" || m["u_urgency"] != "1" {
		t.Errorf("body %s: %v", body, err)
	}
}

func TestImportNetworkFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		c := e.client(e.config())
		if err := c.Authenticate(t.Context()); err != nil {
			t.Fatal(err)
		}
		e.ts.Close()
		_, err := c.Import(t.Context(), record("ionix:1"))
		var se *Error
		if !errors.Is(err, ErrTransient) || !errors.As(err, &se) || se.StatusCode != 0 || se.Err == nil {
			t.Errorf("Import: %#v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		c := e.client(e.config())
		ctx, cancel := context.WithCancel(t.Context())
		e.setStub(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leave
			cancel()
			<-r.Context().Done()
		})
		_, err := c.Import(ctx, record("ionix:1"))
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTransient) {
			t.Errorf("Import: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		cfg := e.config()
		cfg.Timeout = 100 * time.Millisecond
		c := e.client(cfg)
		if err := c.Authenticate(t.Context()); err != nil {
			t.Fatal(err)
		}
		e.setStub(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		})
		_, err := c.Import(t.Context(), record("ionix:1"))
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTransient) {
			t.Errorf("Import: %v", err)
		}
	})
}
