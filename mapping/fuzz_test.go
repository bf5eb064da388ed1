package mapping_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

// FuzzRecord checks the limits every record keeps, whatever the item holds.
func FuzzRecord(f *testing.F) {
	for _, item := range ionix.SampleItems(6, 2) {
		f.Add(item.ID, item.Title, item.Summary, item.Description, item.Asset, item.FirstOpenedAt, strings.Join(item.Tags, ","), item.Urgency)
	}
	f.Add(strings.Repeat("证", 80), "t", strings.Repeat("🔒", 3000), strings.Repeat("é", 3000), "\xff", "2024-05-01T23:30:00-05:00", strings.Repeat("x,", 2000), 9.0)
	f.Fuzz(func(t *testing.T, id, title, summary, description, asset, firstOpened, tags string, urgency float64) {
		item := ionix.ActionItem{
			ID: id, Title: title, Summary: summary, Description: description, Asset: asset,
			Type: "Web", Urgency: urgency, FirstOpenedAt: firstOpened, Tags: strings.Split(tags, ","),
		}
		rec := mapping.ClosingRecord(item, mapping.DefaultOptions(), time.Time{})
		body := rec["u_body"]
		if !utf8.ValidString(body) || utf8.RuneCountInString(body) > mapping.MaxBodyLen {
			t.Fatalf("body invalid or %d runes", utf8.RuneCountInString(body))
		}
		if cid := rec["u_correlation_id"]; !utf8.ValidString(cid) || len(cid) > mapping.MaxCorrelationIDLen {
			t.Fatalf("correlation id %q invalid or too long", cid)
		}
		for field, value := range rec {
			if !utf8.ValidString(value) {
				t.Fatalf("%s is not valid UTF-8: %q", field, value)
			}
		}
		if _, err := mapping.ToRecord(item, mapping.DefaultOptions()); (err == nil) != (item.Validate() == nil) {
			t.Fatalf("ToRecord error %v disagrees with Validate %v", err, item.Validate())
		}
	})
}
