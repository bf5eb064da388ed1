package mapping_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

const fullItemBody = "GlobalProtect gateway exposed.\n\n" +
	"PAN-OS is affected by a command injection vulnerability. Upgrade PAN-OS.\n\n" +
	"Asset: vpn.example.net (subdomain)\n" +
	"Category: Vulnerability\n" +
	"IONIX urgency: 9.3 of 10 (ServiceNow urgency 1 - High)\n" +
	"First opened: 2024-05-02 04:30:00 UTC (2024-05-01T23:30:00-05:00)\n" +
	"CVEs: CVE-2024-3400\n" +
	"Tags: internet-facing, kev\n" +
	"IONIX action item: 5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c"

func TestToRecordGolden(t *testing.T) {
	tests := []struct {
		name string
		opts mapping.Options
		want mapping.Record
	}{
		{"default u_ prefix", mapping.DefaultOptions(), mapping.Record{
			"u_name":           "CVE-2024-3400 PAN-OS GlobalProtect command injection on vpn.example.net",
			"u_body":           fullItemBody,
			"u_category":       "Vulnerability",
			"u_impact":         "1",
			"u_urgency":        "1",
			"u_opening_date":   "2024-05-02 04:30:00",
			"u_correlation_id": "ionix:5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c",
		}},
		{"no prefix", mapping.Options{}, mapping.Record{
			"name":           "CVE-2024-3400 PAN-OS GlobalProtect command injection on vpn.example.net",
			"body":           fullItemBody,
			"category":       "Vulnerability",
			"impact":         "1",
			"urgency":        "1",
			"opening_date":   "2024-05-02 04:30:00",
			"correlation_id": "ionix:5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c",
		}},
		{"overrides", mapping.Options{
			FieldPrefix:       "u_",
			CategoryOverrides: map[string]string{"VULNERABILITY": "Security"},
			ImpactOverrides:   map[string]string{"vulnerability": "2"},
		}, mapping.Record{
			"u_name":           "CVE-2024-3400 PAN-OS GlobalProtect command injection on vpn.example.net",
			"u_body":           fullItemBody,
			"u_category":       "Security",
			"u_impact":         "2",
			"u_urgency":        "1",
			"u_opening_date":   "2024-05-02 04:30:00",
			"u_correlation_id": "ionix:5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mapping.ToRecord(fullItem(), tt.opts)
			if err != nil {
				t.Fatalf("ToRecord: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				for k := range merge(got, tt.want) {
					if got[k] != tt.want[k] {
						t.Errorf("%s = %q, want %q", k, got[k], tt.want[k])
					}
				}
			}
		})
	}
}

func TestToRecordFieldsFollowTheItem(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*ionix.ActionItem)
		field  string
		want   string
	}{
		{"PKI impact", func(a *ionix.ActionItem) { a.Type = "PKI" }, "u_impact", "2"},
		{"category kept as is", func(a *ionix.ActionItem) { a.Type = "Email Security" }, "u_category", "Email Security"},
		{"urgency 8.99", func(a *ionix.ActionItem) { a.Urgency = 8.99 }, "u_urgency", "2"},
		{"urgency 6.99", func(a *ionix.ActionItem) { a.Urgency = 6.99 }, "u_urgency", "3"},
		{"no first_opened_at", func(a *ionix.ActionItem) { a.FirstOpenedAt = "" }, "u_opening_date", ""},
		{"unreadable first_opened_at", func(a *ionix.ActionItem) { a.FirstOpenedAt = "2024-05-01" }, "u_opening_date", ""},
		{"title on one line", func(a *ionix.ActionItem) { a.Title = "  Open RDP\r\non\t203.0.113.45 " }, "u_name", "Open RDP on 203.0.113.45"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := fullItem()
			tt.mutate(&item)
			got, err := mapping.ToRecord(item, mapping.DefaultOptions())
			if err != nil {
				t.Fatalf("ToRecord: %v", err)
			}
			if got[tt.field] != tt.want {
				t.Errorf("%s = %q, want %q", tt.field, got[tt.field], tt.want)
			}
			if len(got) != len(mapping.Fields()) {
				t.Errorf("record has %d fields, want %d: %v", len(got), len(mapping.Fields()), got)
			}
		})
	}
}

func TestToRecordUnreadableDateKeepsTheItem(t *testing.T) {
	item := fullItem()
	item.FirstOpenedAt = "01/05/2024"
	rec, err := mapping.ToRecord(item, mapping.DefaultOptions())
	if err != nil {
		t.Fatalf("an unreadable date lost the item: %v", err)
	}
	if rec["u_opening_date"] != "" || !strings.Contains(rec["u_body"], "01/05/2024 (not an RFC 3339 time; opening date left empty)") {
		t.Errorf("opening_date %q, body:\n%s", rec["u_opening_date"], rec["u_body"])
	}
}

func TestToRecordRejectsInvalidItems(t *testing.T) {
	for name, mutate := range map[string]func(*ionix.ActionItem){
		"no id":       func(a *ionix.ActionItem) { a.ID = "" },
		"no title":    func(a *ionix.ActionItem) { a.Title = "" },
		"no type":     func(a *ionix.ActionItem) { a.Type = "" },
		"urgency 11":  func(a *ionix.ActionItem) { a.Urgency = 11 },
		"urgency NaN": func(a *ionix.ActionItem) { a.Urgency = nan() },
	} {
		t.Run(name, func(t *testing.T) {
			item := fullItem()
			mutate(&item)
			rec, err := mapping.ToRecord(item, mapping.DefaultOptions())
			if err == nil || !errors.Is(err, ionix.ErrInvalid) {
				t.Errorf("ToRecord = %v, %v; want an ErrInvalid", rec, err)
			}
		})
	}
}

func TestToRecordSampleItems(t *testing.T) {
	for _, item := range ionix.SampleItems(100, 5) {
		rec, err := mapping.ToRecord(item, mapping.DefaultOptions())
		if err != nil {
			t.Fatalf("sample item %s: %v", item.ID, err)
		}
		for _, f := range mapping.Fields() {
			if _, ok := rec["u_"+f]; !ok {
				t.Errorf("sample item %s: field u_%s missing", item.ID, f)
			}
		}
		if rec["u_opening_date"] == "" {
			t.Errorf("sample item %s: opening date of %q empty", item.ID, item.FirstOpenedAt)
		}
	}
}

func TestClosingRecord(t *testing.T) {
	item := fullItem()
	closedAt := time.Date(2024, 6, 1, 8, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	rec := mapping.ClosingRecord(item, mapping.DefaultOptions(), closedAt)
	open, _ := mapping.ToRecord(item, mapping.DefaultOptions())
	for k, v := range open {
		if rec[k] != v {
			t.Errorf("%s = %q, want %q as in ToRecord", k, rec[k], v)
		}
	}
	want := map[string]string{
		"u_state":       "6",
		"u_close_code":  "Resolved by caller",
		"u_close_notes": "Closed in IONIX at 2024-06-01 06:00:00 UTC: the finding is no longer detected.",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %q, want %q", k, rec[k], v)
		}
	}

	t.Run("zero time falls back to last_closed_at", func(t *testing.T) {
		item := fullItem()
		item.LastClosedAt = "2024-06-02T00:00:00-04:00"
		rec := mapping.ClosingRecord(item, mapping.Options{}, time.Time{})
		if got, want := rec["close_notes"], "Closed in IONIX at 2024-06-02 04:00:00 UTC: the finding is no longer detected."; got != want {
			t.Errorf("close_notes = %q, want %q", got, want)
		}
	})
	t.Run("no time at all", func(t *testing.T) {
		rec := mapping.ClosingRecord(fullItem(), mapping.Options{}, time.Time{})
		if got, want := rec["close_notes"], "Closed in IONIX: the finding is no longer detected."; got != want {
			t.Errorf("close_notes = %q, want %q", got, want)
		}
	})
}

func TestReopeningRecord(t *testing.T) {
	item := fullItem()
	open, _ := mapping.ToRecord(item, mapping.DefaultOptions())
	tests := []struct {
		name         string
		lastOpenedAt string
		reopenedAt   time.Time
		wantNotes    string
	}{
		{"time given", "", time.Date(2024, 7, 1, 10, 0, 0, 0, time.FixedZone("CEST", 2*3600)), "Reopened in IONIX at 2024-07-01 08:00:00 UTC: the finding is detected again."},
		{"zero time falls back to last_opened_at", "2024-07-02T00:00:00-04:00", time.Time{}, "Reopened in IONIX at 2024-07-02 04:00:00 UTC: the finding is detected again."},
		{"no time at all", "yesterday", time.Time{}, "Reopened in IONIX: the finding is detected again."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := item
			it.LastOpenedAt = tt.lastOpenedAt
			rec := mapping.ReopeningRecord(it, mapping.DefaultOptions(), tt.reopenedAt)
			for k, v := range open {
				if rec[k] != v {
					t.Errorf("%s = %q, want %q as in ToRecord", k, rec[k], v)
				}
			}
			if rec["u_state"] != mapping.StateInProgress || rec["u_close_notes"] != tt.wantNotes {
				t.Errorf("state %q, close_notes %q; want %q, %q", rec["u_state"], rec["u_close_notes"], mapping.StateInProgress, tt.wantNotes)
			}
			if _, ok := rec["u_close_code"]; ok {
				t.Errorf("close_code %q sent; a reopening leaves it", rec["u_close_code"])
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := mapping.DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions invalid: %v", err)
	}
	if err := (mapping.Options{}).Validate(); err != nil {
		t.Errorf("empty prefix rejected: %v", err)
	}
	bad := mapping.Options{
		FieldPrefix:       "U-",
		CategoryOverrides: map[string]string{"DNS": ""},
		ImpactOverrides:   map[string]string{"PKI": "critical", "": "1"},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{`field prefix "U-"`, `category override for "DNS" is empty`, `impact override for "PKI" is "critical"`, "impact override for an empty type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func merge(a, b mapping.Record) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}
