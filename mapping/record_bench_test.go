package mapping_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

// longDescriptionItem is a sample item whose description is about 10 kB of text
// with multi-byte runes, so that the body is cut to MaxBodyLen runes.
func longDescriptionItem() ionix.ActionItem {
	it := ionix.SampleItems(1, 3)[0]
	it.Description = strings.Repeat("Zertifikat für müller.example.com läuft ab — renew it before users see warnings. ", 125)
	return it
}

// BenchmarkToRecord maps one decoded item to its Import Set record per op (the
// consumer does this once per message it sends).
//
//   - typical: the SampleItems, cycled (a body of a few hundred characters).
//   - description 10kB: a description of about 10 kB, cut to 4,000 runes.
func BenchmarkToRecord(b *testing.B) {
	for _, bc := range []struct {
		name  string
		items []ionix.ActionItem
		cut   bool
	}{
		{"typical", ionix.SampleItems(256, 1), false},
		{"description_10kB", []ionix.ActionItem{longDescriptionItem()}, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := mapping.DefaultOptions()
			for _, it := range bc.items {
				r, err := mapping.ToRecord(it, o)
				if err != nil {
					b.Fatal(err)
				}
				body := r[o.Field(mapping.FieldBody)]
				n, cut := utf8.RuneCountInString(body), strings.Contains(body, mapping.TruncationMarker)
				if n > mapping.MaxBodyLen || cut != bc.cut {
					b.Fatalf("body of %d runes, cut %v; want at most %d runes, cut %v", n, cut, mapping.MaxBodyLen, bc.cut)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := mapping.ToRecord(bc.items[i%len(bc.items)], o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkClosingRecord builds the record that resolves an item's incident.
func BenchmarkClosingRecord(b *testing.B) {
	items := ionix.SampleItems(256, 1)
	o := mapping.DefaultOptions()
	closedAt := time.Date(2024, time.November, 5, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if r := mapping.ClosingRecord(items[i%len(items)], o, closedAt); r[o.Field(mapping.FieldState)] != mapping.StateResolved {
			b.Fatal("not a closing record")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
