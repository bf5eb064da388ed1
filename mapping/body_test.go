package mapping_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

func TestBodyContents(t *testing.T) {
	item := fullItem()
	body := mapping.Body(item)
	want := "GlobalProtect gateway exposed.\n\n" +
		"PAN-OS is affected by a command injection vulnerability. Upgrade PAN-OS.\n\n" +
		"Asset: vpn.example.net (subdomain)\n" +
		"Category: Vulnerability\n" +
		"IONIX urgency: 9.3 of 10 (ServiceNow urgency 1 - High)\n" +
		"First opened: 2024-05-02 04:30:00 UTC (2024-05-01T23:30:00-05:00)\n" +
		"CVEs: CVE-2024-3400\n" +
		"Tags: internet-facing, kev\n" +
		"IONIX action item: 5f3c2a1e-0b6d-4c1e-9a7f-1d2e3f4a5b6c"
	if body != want {
		t.Errorf("Body =\n%s\n\nwant\n%s", body, want)
	}
}

func TestBodyLeavesOutEmptyParts(t *testing.T) {
	body := mapping.Body(ionix.ActionItem{ID: "AI-1", Title: "t", Type: "DNS", Urgency: 7, Summary: "Same.", Description: "Same."})
	want := "Same.\n\nCategory: DNS\nIONIX urgency: 7 of 10 (ServiceNow urgency 2 - Medium)\nIONIX action item: AI-1"
	if body != want {
		t.Errorf("Body =\n%q\nwant\n%q", body, want)
	}
}

func TestBodyUnreadableDate(t *testing.T) {
	item := fullItem()
	item.FirstOpenedAt = "last Tuesday"
	body := mapping.Body(item)
	if !strings.Contains(body, "First opened: last Tuesday (not an RFC 3339 time; opening date left empty)") {
		t.Errorf("body does not explain the unreadable date:\n%s", body)
	}
}

func TestBodyTruncation(t *testing.T) {
	tests := []struct {
		name        string
		description string
		tags        []string
		keepsFacts  bool
	}{
		{"ascii", strings.Repeat("a", 10000), nil, true},
		{"emoji", strings.Repeat("🔒", 5000), nil, true},
		{"cjk", strings.Repeat("证书已过期", 1000), nil, true},
		{"mixed at the cut", strings.Repeat("é🔒证", 2000), nil, true},
		{"exactly at the limit minus facts", "", nil, true},
		{"facts alone too long", "short", []string{strings.Repeat("标签", 3000)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := fullItem()
			item.Summary = ""
			item.Description = tt.description
			item.Tags = tt.tags
			if tt.description == "" { // make the body exactly MaxBodyLen + 1 runes
				facts := utf8.RuneCountInString(mapping.Body(item))
				item.Description = strings.Repeat("ü", mapping.MaxBodyLen-facts-2+1)
			}
			body := mapping.Body(item)
			if !utf8.ValidString(body) {
				t.Fatal("body is not valid UTF-8")
			}
			if n := utf8.RuneCountInString(body); n > mapping.MaxBodyLen {
				t.Fatalf("body has %d runes, want <= %d", n, mapping.MaxBodyLen)
			}
			if !strings.Contains(body, mapping.TruncationMarker) {
				t.Fatal("cut body has no truncation marker")
			}
			if tt.keepsFacts {
				if !strings.HasSuffix(body, "IONIX action item: "+item.ID) {
					t.Errorf("the facts after the description were lost:\n...%s", lastRunes(body, 300))
				}
				if n := utf8.RuneCountInString(body); n != mapping.MaxBodyLen {
					t.Errorf("body has %d runes, want the room used fully (%d)", n, mapping.MaxBodyLen)
				}
			} else if !strings.HasSuffix(body, mapping.TruncationMarker) {
				t.Errorf("body does not end with the marker:\n...%s", lastRunes(body, 100))
			}
		})
	}
}

func TestBodyAtTheLimitIsNotCut(t *testing.T) {
	item := fullItem()
	item.Summary = ""
	item.Description = ""
	facts := utf8.RuneCountInString(mapping.Body(item))
	item.Description = strings.Repeat("🔒", mapping.MaxBodyLen-facts-2)
	body := mapping.Body(item)
	if n := utf8.RuneCountInString(body); n != mapping.MaxBodyLen {
		t.Fatalf("body has %d runes, want exactly %d", n, mapping.MaxBodyLen)
	}
	if strings.Contains(body, mapping.TruncationMarker) {
		t.Error("a body of exactly MaxBodyLen runes was marked as cut")
	}
}

func TestBodyInvalidUTF8(t *testing.T) {
	item := fullItem()
	item.Description = "bad \xff\xfe bytes " + strings.Repeat("x\xff", 5000)
	body := mapping.Body(item)
	if !utf8.ValidString(body) || utf8.RuneCountInString(body) > mapping.MaxBodyLen {
		t.Errorf("body invalid or too long (%d runes)", utf8.RuneCountInString(body))
	}
}

func lastRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[len(r)-n:])
}
