package ionix_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
)

func TestMsgID(t *testing.T) {
	base := ionix.SampleItems(1, 42)[0]
	baseID := ionix.MsgID(base, ionix.EventOpened)

	if !regexp.MustCompile(`^` + regexp.QuoteMeta(base.ID) + `:opened:[0-9a-f]{16}$`).MatchString(baseID) {
		t.Fatalf("MsgID = %q, want <id>:opened:<16 hex>", baseID)
	}

	tests := []struct {
		name     string
		mutate   func(*ionix.ActionItem)
		ev       ionix.Event
		wantSame bool
	}{
		{"same item again", func(*ionix.ActionItem) {}, ionix.EventOpened, true},
		{"copy decoded from its JSON", nil, ionix.EventOpened, true},
		{"closed event", func(*ionix.ActionItem) {}, ionix.EventClosed, false},
		{"urgency changed", func(a *ionix.ActionItem) { a.Urgency = 4.2 }, ionix.EventOpened, false},
		{"title changed", func(a *ionix.ActionItem) { a.Title += "!" }, ionix.EventOpened, false},
		{"type changed", func(a *ionix.ActionItem) { a.Type = "Web" }, ionix.EventOpened, false},
		{"description changed", func(a *ionix.ActionItem) { a.Description += "." }, ionix.EventOpened, false},
		{"summary changed", func(a *ionix.ActionItem) { a.Summary += "." }, ionix.EventOpened, false},
		{"asset changed", func(a *ionix.ActionItem) { a.Asset = "other.example.com" }, ionix.EventOpened, false},
		{"first_opened_at changed", func(a *ionix.ActionItem) { a.FirstOpenedAt = "2020-01-01T00:00:00Z" }, ionix.EventOpened, false},
		{"tags changed only", func(a *ionix.ActionItem) { a.Tags = append(a.Tags, "new") }, ionix.EventOpened, true},
		{"cves changed only", func(a *ionix.ActionItem) { a.CVEs = []string{"CVE-2020-0001"} }, ionix.EventOpened, true},
		{"updated_time changed only", func(a *ionix.ActionItem) { a.UpdatedTime = "2030-01-01T00:00:00Z" }, ionix.EventOpened, true},
		{"state and extra changed only", func(a *ionix.ActionItem) { a.CurrentState = "acknowledged"; a.Extra = nil }, ionix.EventOpened, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var item ionix.ActionItem
			if tt.mutate == nil {
				data, err := base.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				if item, err = ionix.Decode(data); err != nil {
					t.Fatal(err)
				}
			} else {
				item = ionix.SampleItems(1, 42)[0] // a fresh copy: slices not shared with base
				tt.mutate(&item)
			}
			got := ionix.MsgID(item, tt.ev)
			if (got == baseID) != tt.wantSame {
				t.Errorf("MsgID = %q, base %q; want same = %v", got, baseID, tt.wantSame)
			}
		})
	}
}

func TestFingerprintSeparatesFields(t *testing.T) {
	a := ionix.ActionItem{Title: "ab", Summary: "c"}
	b := ionix.ActionItem{Title: "a", Summary: "bc"}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("moving text between fields kept the fingerprint")
	}
	c := ionix.ActionItem{Description: "x", Summary: ""}
	d := ionix.ActionItem{Description: "", Summary: "x"}
	if c.Fingerprint() == d.Fingerprint() {
		t.Error("swapping description and summary kept the fingerprint")
	}
	if z, nz := (ionix.ActionItem{Urgency: 0}).Fingerprint(), (ionix.ActionItem{Urgency: negZero()}).Fingerprint(); z != nz {
		t.Error("-0 and 0 urgency differ")
	}
}

func TestMsgIDEscapesUnsafeIDs(t *testing.T) {
	tests := map[string]string{
		"AI-1":         "AI-1",
		"a:b c/ü":      "a:b c/ü",
		"line\r\nnext": "line%0D%0Anext",
		"100%":         "100%25",
		"bad\xffbyte":  "bad%FFbyte",
	}
	for id, wantPrefix := range tests {
		got := ionix.MsgID(ionix.ActionItem{ID: id}, ionix.EventOpened)
		if !strings.HasPrefix(got, wantPrefix+":opened:") {
			t.Errorf("MsgID(id %q) = %q, want prefix %q", id, got, wantPrefix+":opened:")
		}
	}
	if ionix.MsgID(ionix.ActionItem{ID: "a\nb"}, ionix.EventOpened) == ionix.MsgID(ionix.ActionItem{ID: "a%0Ab"}, ionix.EventOpened) {
		t.Error("escaped and literal ids collide")
	}
}

func TestMsgIDNth(t *testing.T) {
	it := ionix.SampleItems(1, 7)[0]
	first := ionix.MsgID(it, ionix.EventOpened)
	tests := []struct {
		n    int
		want string
	}{
		{0, first},
		{-1, first},
		{1, first + ":1"},
		{12, first + ":12"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.n), func(t *testing.T) {
			if got := ionix.MsgIDNth(it, ionix.EventOpened, tt.n); got != tt.want {
				t.Errorf("MsgIDNth(n=%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
	if ionix.MsgIDNth(it, ionix.EventOpened, 1) == ionix.MsgIDNth(it, ionix.EventClosed, 1) {
		t.Error("opened and closed events of the same publication share an id")
	}
}
