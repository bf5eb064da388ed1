package ionix_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
)

// minimal returns a valid action item JSON object with the given fields
// replaced; a nil value removes the field.
func minimal(t *testing.T, replace map[string]any) []byte {
	t.Helper()
	obj := map[string]any{
		"id":      "AI-1",
		"title":   map[string]any{"label": "Expired TLS certificate on mail.example.com"},
		"type":    "PKI",
		"urgency": map[string]any{"urgency": 9.3},
	}
	for k, v := range replace {
		if v == nil {
			delete(obj, k)
			continue
		}
		obj[k] = v
	}
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// rawJSON is a value minimal writes verbatim.
type rawJSON = json.RawMessage

func TestDecodeAcceptsBothShapes(t *testing.T) {
	tests := []struct {
		name        string
		replace     map[string]any
		wantTitle   string
		wantUrgency float64
	}{
		{"title object, urgency object", nil, "Expired TLS certificate on mail.example.com", 9.3},
		{"title string", map[string]any{"title": "Missing DMARC record on example.net"}, "Missing DMARC record on example.net", 9.3},
		{"urgency number", map[string]any{"urgency": 7}, "Expired TLS certificate on mail.example.com", 7},
		{"urgency 0", map[string]any{"urgency": 0}, "Expired TLS certificate on mail.example.com", 0},
		{"urgency 10", map[string]any{"urgency": rawJSON(`{"urgency": 10.0}`)}, "Expired TLS certificate on mail.example.com", 10},
		{"urgency -0 is 0", map[string]any{"urgency": rawJSON(`-0`)}, "Expired TLS certificate on mail.example.com", 0},
		{"urgency exponent", map[string]any{"urgency": rawJSON(`9.3e0`)}, "Expired TLS certificate on mail.example.com", 9.3},
		{"urgency object with more fields", map[string]any{"urgency": rawJSON(`{"urgency": 6.9, "label": "medium"}`)}, "Expired TLS certificate on mail.example.com", 6.9},
		{"title object with more fields", map[string]any{"title": rawJSON(`{"label": "Open RDP on 203.0.113.45", "key": "rdp"}`)}, "Open RDP on 203.0.113.45", 9.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item, err := ionix.Decode(minimal(t, tt.replace))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if item.Title != tt.wantTitle {
				t.Errorf("Title = %q, want %q", item.Title, tt.wantTitle)
			}
			if item.Urgency != tt.wantUrgency {
				t.Errorf("Urgency = %v, want %v", item.Urgency, tt.wantUrgency)
			}
		})
	}
}

func TestDecodeFullItem(t *testing.T) {
	data := []byte(`{
	  "id": "5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c",
	  "title": {"label": "CVE-2024-3400 PAN-OS GlobalProtect command injection on vpn.example.net"},
	  "summary": "Vulnerable GlobalProtect gateway",
	  "description": "Upgrade PAN-OS.",
	  "asset": "vpn.example.net",
	  "asset_type": "subdomain",
	  "type": "Vulnerability",
	  "urgency": {"urgency": 10},
	  "current_state": "open",
	  "first_opened_at": "2024-04-12T09:15:00+02:00",
	  "last_opened_at": "2024-04-13T09:15:00Z",
	  "updated_time": "2024-04-14T10:00:00.123456Z",
	  "is_open": true,
	  "last_closed_at": null,
	  "tags": ["kev", {"name": "internet-facing"}, {"label": "firewall"}, {"value": "prod"}, {"tag": "pan-os"}, {"color": "red"}, 42, null, ""],
	  "cves": ["CVE-2024-3400", {"id": "CVE-2024-0001"}, {"cve": "CVE-2024-0002"}, {"name": "CVE-2024-0003"}],
	  "groups": [{"id": 7, "name": "Production"}],
	  "acknowledged_by": null,
	  "x_vendor": {"nested": [1, 2, {"a": "<b>"}]}
	}`)
	item, err := ionix.Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	isOpen := true
	want := ionix.ActionItem{
		ID:            "5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c",
		Title:         "CVE-2024-3400 PAN-OS GlobalProtect command injection on vpn.example.net",
		Summary:       "Vulnerable GlobalProtect gateway",
		Description:   "Upgrade PAN-OS.",
		Asset:         "vpn.example.net",
		AssetType:     "subdomain",
		Type:          "Vulnerability",
		Urgency:       10,
		CurrentState:  "open",
		FirstOpenedAt: "2024-04-12T09:15:00+02:00",
		LastOpenedAt:  "2024-04-13T09:15:00Z",
		UpdatedTime:   "2024-04-14T10:00:00.123456Z",
		IsOpen:        &isOpen,
		Tags:          []string{"kev", "internet-facing", "firewall", "prod", "pan-os", `{"color":"red"}`, "42"},
		CVEs:          []string{"CVE-2024-3400", "CVE-2024-0001", "CVE-2024-0002", "CVE-2024-0003"},
		Extra: map[string]json.RawMessage{
			"groups":          json.RawMessage(`[{"id":7,"name":"Production"}]`),
			"acknowledged_by": json.RawMessage(`null`),
			"x_vendor":        json.RawMessage(`{"nested":[1,2,{"a":"\u003cb\u003e"}]}`),
		},
	}
	if !reflect.DeepEqual(item, want) {
		t.Errorf("Decode mismatch\n got: %#v\nwant: %#v", item, want)
	}
}

func TestDecodeLenientOptionalFields(t *testing.T) {
	tests := []struct {
		name      string
		replace   map[string]any
		check     func(ionix.ActionItem) bool
		wantExtra string // key expected in Extra, or ""
	}{
		{"tags as one string", map[string]any{"tags": "external"}, func(a ionix.ActionItem) bool { return reflect.DeepEqual(a.Tags, []string{"external"}) }, ""},
		{"tags as one object", map[string]any{"tags": map[string]any{"name": "pci"}}, func(a ionix.ActionItem) bool { return reflect.DeepEqual(a.Tags, []string{"pci"}) }, ""},
		{"tags empty list", map[string]any{"tags": []any{}}, func(a ionix.ActionItem) bool { return a.Tags == nil }, ""},
		{"tag object with blank name falls back", map[string]any{"tags": []any{map[string]any{"name": " ", "label": "dmz"}}}, func(a ionix.ActionItem) bool { return reflect.DeepEqual(a.Tags, []string{"dmz"}) }, ""},
		{"cves object without known key", map[string]any{"cves": []any{map[string]any{"score": 9.8}}}, func(a ionix.ActionItem) bool { return reflect.DeepEqual(a.CVEs, []string{`{"score":9.8}`}) }, ""},
		{"null optional strings", map[string]any{"summary": rawJSON("null"), "last_closed_at": rawJSON("null")}, func(a ionix.ActionItem) bool { return a.Summary == "" && a.LastClosedAt == "" }, ""},
		{"numeric description kept in Extra", map[string]any{"description": 5}, func(a ionix.ActionItem) bool { return a.Description == "" }, "description"},
		{"is_open as string kept in Extra", map[string]any{"is_open": "yes"}, func(a ionix.ActionItem) bool { return a.IsOpen == nil }, "is_open"},
		{"is_open false", map[string]any{"is_open": false}, func(a ionix.ActionItem) bool { return a.IsOpen != nil && !*a.IsOpen }, ""},
		{"numeric id kept as its text", map[string]any{"id": rawJSON("12345")}, func(a ionix.ActionItem) bool { return a.ID == "12345" }, ""},
		{"differently cased key is unknown", map[string]any{"ID": "other"}, func(a ionix.ActionItem) bool { return a.ID == "AI-1" }, "ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item, err := ionix.Decode(minimal(t, tt.replace))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !tt.check(item) {
				t.Errorf("unexpected item %#v", item)
			}
			if tt.wantExtra != "" {
				if _, ok := item.Extra[tt.wantExtra]; !ok {
					t.Errorf("Extra = %v, want key %q kept", item.Extra, tt.wantExtra)
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		problem string // expected in the error message
	}{
		{"no id", minimal(t, map[string]any{"id": nil}), "missing id"},
		{"null id", minimal(t, map[string]any{"id": rawJSON("null")}), "missing id"},
		{"empty id", minimal(t, map[string]any{"id": ""}), "empty id"},
		{"blank id", minimal(t, map[string]any{"id": "  \t"}), "empty id"},
		{"id object", minimal(t, map[string]any{"id": map[string]any{"v": 1}}), "id is not a string"},
		{"no title", minimal(t, map[string]any{"title": nil}), "missing title"},
		{"empty title string", minimal(t, map[string]any{"title": ""}), "empty title"},
		{"title object without label", minimal(t, map[string]any{"title": map[string]any{"text": "x"}}), "title has no label"},
		{"title label null", minimal(t, map[string]any{"title": rawJSON(`{"label": null}`)}), "title has no label"},
		{"title label empty", minimal(t, map[string]any{"title": map[string]any{"label": ""}}), "empty title"},
		{"title label number", minimal(t, map[string]any{"title": map[string]any{"label": 3}}), "title label is not a string"},
		{"title number", minimal(t, map[string]any{"title": 3}), "title is neither a string nor an object"},
		{"no type", minimal(t, map[string]any{"type": nil}), "missing type"},
		{"empty type", minimal(t, map[string]any{"type": " "}), "empty type"},
		{"type number", minimal(t, map[string]any{"type": 1}), "type is not a string"},
		{"urgency missing", minimal(t, map[string]any{"urgency": nil}), "missing urgency"},
		{"urgency null", minimal(t, map[string]any{"urgency": rawJSON("null")}), "urgency is null"},
		{"urgency inner null", minimal(t, map[string]any{"urgency": rawJSON(`{"urgency": null}`)}), "urgency is null"},
		{"urgency numeric string", minimal(t, map[string]any{"urgency": "9.3"}), "urgency is not a number (got a string)"},
		{"urgency inner numeric string", minimal(t, map[string]any{"urgency": map[string]any{"urgency": "9.3"}}), "urgency is not a number (got a string)"},
		{"urgency NaN string", minimal(t, map[string]any{"urgency": "NaN"}), "urgency is not a number"},
		{"urgency object without number", minimal(t, map[string]any{"urgency": map[string]any{"score": 9.3}}), `urgency object has no "urgency" field`},
		{"urgency empty object", minimal(t, map[string]any{"urgency": map[string]any{}}), `urgency object has no "urgency" field`},
		{"urgency boolean", minimal(t, map[string]any{"urgency": true}), "urgency is not a number (got a boolean)"},
		{"urgency array", minimal(t, map[string]any{"urgency": []any{9.3}}), "urgency is not a number (got an array)"},
		{"urgency nested object", minimal(t, map[string]any{"urgency": rawJSON(`{"urgency": {"urgency": 9}}`)}), "urgency is not a number (got an object)"},
		{"urgency -0.1", minimal(t, map[string]any{"urgency": -0.1}), "urgency -0.1 outside 0-10"},
		{"urgency 10.01", minimal(t, map[string]any{"urgency": 10.01}), "urgency 10.01 outside 0-10"},
		{"urgency 11", minimal(t, map[string]any{"urgency": map[string]any{"urgency": 11}}), "urgency 11 outside 0-10"},
		{"urgency overflowing float64", minimal(t, map[string]any{"urgency": rawJSON("1e999")}), "urgency 1e999 outside 0-10"},
		{"several problems at once", minimal(t, map[string]any{"title": nil, "type": nil}), "missing title; missing type"},
		{"array", []byte(`[{"id": "AI-1"}]`), "not a JSON object (got an array)"},
		{"string", []byte(`"AI-1"`), "not a JSON object (got a string)"},
		{"number", []byte(`42`), "not a JSON object (got a number)"},
		{"null", []byte(`null`), "not a JSON object (got null)"},
		{"empty input", []byte(``), "empty input"},
		{"whitespace", []byte(" \n\t"), "empty input"},
		{"garbage", []byte("\x00\xff<html>"), "not valid JSON"},
		{"truncated object", []byte(`{"id": "AI-1", "title": "x"`), "not valid JSON"},
		{"two objects", []byte(`{"id":"a"} {"id":"b"}`), "not valid JSON"},
		{"NaN literal", []byte(`{"id":"a","title":"t","type":"DNS","urgency":NaN}`), "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ionix.Decode(tt.data)
			if err == nil {
				t.Fatalf("Decode(%s) succeeded, want an error containing %q", tt.data, tt.problem)
			}
			if !errors.Is(err, ionix.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			var invalid *ionix.InvalidError
			if !errors.As(err, &invalid) {
				t.Errorf("error %T is not an *InvalidError", err)
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error %q does not say %q", err, tt.problem)
			}
		})
	}
}

// TestDecodeNeverMergesDistinctItems: an id that encoding/json would change (an
// invalid UTF-8 byte or half a surrogate pair, both decoded as U+FFFD) and a key
// given twice (which would resolve to its last value) are rejected, so that two
// distinct items never become one.
func TestDecodeNeverMergesDistinctItems(t *testing.T) {
	const rest = `"title":"t","type":"DNS","urgency":5`
	tests := []struct {
		name    string
		data    string
		problem string // "" = accepted
		wantID  string // the id Decode returns, accepted or not
	}{
		{"invalid byte in id", "{\"id\":\"AI-1\xff\"," + rest + "}", "id is not valid UTF-8", "AI-1\uFFFD"},
		{"other invalid byte in id", "{\"id\":\"AI-1\xfe\"," + rest + "}", "id is not valid UTF-8", "AI-1\uFFFD"},
		{"truncated multi-byte rune in id", "{\"id\":\"\xe2\x82\"," + rest + "}", "id is not valid UTF-8", "\uFFFD\uFFFD"},
		{"overlong encoding in id", "{\"id\":\"\xc0\xaf\"," + rest + "}", "id is not valid UTF-8", "\uFFFD\uFFFD"},
		{"first half of a surrogate pair alone", `{"id":"AI-1\ud800",` + rest + `}`, "unpaired", "AI-1\uFFFD"},
		{"second half alone", `{"id":"\uDC00AI-1",` + rest + `}`, "unpaired", "\uFFFDAI-1"},
		{"first half followed by another escape", `{"id":"\ud800\u0041",` + rest + `}`, "unpaired", "\uFFFDA"},
		{"first half followed by a first half", `{"id":"\ud800\ud800",` + rest + `}`, "unpaired", "\uFFFD\uFFFD"},
		{"first half at the end", `{"id":"a\uD83D",` + rest + `}`, "unpaired", "a\uFFFD"},
		{"duplicate id", `{"id":"a","id":"b",` + rest + `}`, `duplicate key "id"`, ""},
		{"duplicate id spelt with an escape", `{"id":"a","\u0069d":"b",` + rest + `}`, `duplicate key "id"`, ""},
		{"duplicate urgency", `{"id":"a",` + rest + `,"urgency":9}`, `duplicate key "urgency"`, "a"},
		{"duplicate unknown field", `{"id":"a",` + rest + `,"x":1,"x":2}`, `duplicate key "x"`, "a"},
		{"keys equal once their invalid bytes are replaced", "{\"id\":\"a\"," + rest + ",\"\xff\":1,\"\xfe\":2}", "duplicate key \"\uFFFD\"", "a"},
		{"duplicate label in title", `{"id":"a","title":{"label":"x","label":"y"},"type":"DNS","urgency":5}`, `duplicate key "label" in title`, "a"},
		{"duplicate urgency in urgency", `{"id":"a","title":"t","type":"DNS","urgency":{"urgency":1,"urgency":9}}`, `duplicate key "urgency" in urgency`, "a"},
		{"same key in two nested objects", `{"id":"a",` + rest + `,"x":{"k":1},"y":{"k":2}}`, "", "a"},
		{"duplicate key deeper is kept as is", `{"id":"a",` + rest + `,"x":{"k":1,"k":2}}`, "", "a"},
		{"colons, quotes and braces inside strings", `{"id":"a:\"b\\",` + rest + `,"x":"{\":\"}[","y\":":1}`, "", `a:"b\`},
		{"surrogate pair in id", `{"id":"\ud83d\ude00",` + rest + `}`, "", "\U0001F600"},
		{"escaped backslash before u", `{"id":"\\ud800",` + rest + `}`, "", `\ud800`},
		{"U+FFFD itself in id", "{\"id\":\"a\uFFFD\"," + rest + "}", "", "a\uFFFD"},
		{"invalid byte in title is replaced", "{\"id\":\"a\",\"title\":\"t\xff\",\"type\":\"DNS\",\"urgency\":5}", "", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item, err := ionix.Decode([]byte(tt.data))
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Decode(%q): %v", tt.data, err)
				}
			} else if err == nil || !errors.Is(err, ionix.ErrInvalid) || !strings.Contains(err.Error(), tt.problem) {
				t.Fatalf("Decode(%q) = %v, want an ErrInvalid saying %q", tt.data, err, tt.problem)
			}
			if item.ID != tt.wantID {
				t.Errorf("ID = %q, want %q", item.ID, tt.wantID)
			}
		})
	}
}

func TestDecodeErrorNamesTheItem(t *testing.T) {
	item, err := ionix.Decode(minimal(t, map[string]any{"id": "AI-77", "urgency": 11}))
	if err == nil {
		t.Fatal("want an error")
	}
	if got, want := err.Error(), `invalid action item "AI-77": urgency 11 outside 0-10`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if item.ID != "AI-77" {
		t.Errorf("partial item ID = %q, want AI-77 (kept for dead letters)", item.ID)
	}
}

func TestValidate(t *testing.T) {
	valid := ionix.ActionItem{ID: "AI-1", Title: "t", Type: "DNS", Urgency: 5}
	tests := []struct {
		name    string
		mutate  func(*ionix.ActionItem)
		problem string // "" = valid
	}{
		{"valid", func(*ionix.ActionItem) {}, ""},
		{"urgency 0", func(a *ionix.ActionItem) { a.Urgency = 0 }, ""},
		{"urgency 10", func(a *ionix.ActionItem) { a.Urgency = 10 }, ""},
		{"no id", func(a *ionix.ActionItem) { a.ID = "" }, "missing id"},
		{"id not valid UTF-8", func(a *ionix.ActionItem) { a.ID = "AI-1\xff" }, "id is not valid UTF-8"},
		{"blank title", func(a *ionix.ActionItem) { a.Title = " " }, "missing title"},
		{"no type", func(a *ionix.ActionItem) { a.Type = "" }, "missing type"},
		{"urgency NaN", func(a *ionix.ActionItem) { a.Urgency = nan() }, "urgency is not a number (NaN)"},
		{"urgency +Inf", func(a *ionix.ActionItem) { a.Urgency = inf() }, "urgency +Inf outside 0-10"},
		{"urgency -0.1", func(a *ionix.ActionItem) { a.Urgency = -0.1 }, "urgency -0.1 outside 0-10"},
		{"urgency 10.01", func(a *ionix.ActionItem) { a.Urgency = 10.01 }, "urgency 10.01 outside 0-10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := valid
			tt.mutate(&item)
			err := item.Validate()
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ionix.ErrInvalid) || !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("Validate = %v, want an ErrInvalid saying %q", err, tt.problem)
			}
		})
	}
}

func TestParseEvent(t *testing.T) {
	for _, in := range []string{"opened", "OPENED", " Opened "} {
		if ev, err := ionix.ParseEvent(in); err != nil || ev != ionix.EventOpened {
			t.Errorf("ParseEvent(%q) = %q, %v", in, ev, err)
		}
	}
	if ev, err := ionix.ParseEvent("closed"); err != nil || ev != ionix.EventClosed {
		t.Errorf("ParseEvent(closed) = %q, %v", ev, err)
	}
	if _, err := ionix.ParseEvent("reopened"); err == nil {
		t.Error("ParseEvent(reopened) succeeded")
	}
}
