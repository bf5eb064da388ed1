package ionix_test

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ionix"
)

func TestSampleItemsDeterministic(t *testing.T) {
	a, b := ionix.SampleItems(50, 7), ionix.SampleItems(50, 7)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same n and seed gave different items")
	}
	if short := ionix.SampleItems(10, 7); !reflect.DeepEqual(short, a[:10]) {
		t.Error("SampleItems(10) is not a prefix of SampleItems(50)")
	}
	if other := ionix.SampleItems(50, 8); reflect.DeepEqual(other, a) {
		t.Error("another seed gave the same items")
	}
	if got := ionix.SampleItems(0, 1); len(got) != 0 {
		t.Errorf("SampleItems(0) has %d items", len(got))
	}
}

func TestSampleItemsRealistic(t *testing.T) {
	items := ionix.SampleItems(200, 1)
	// Hostnames must be reserved example names; IPs documentation ranges.
	host := regexp.MustCompile(`\b[a-z0-9.-]+\.(com|net|org|io)\b`)
	allowedHost := regexp.MustCompile(`(^|\.)example\.(com|net)$`)
	ip := regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)
	allowedIP := regexp.MustCompile(`^(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+$`)

	ids := map[string]bool{}
	categories := map[string]bool{}
	urgencies := map[float64]bool{}
	offsets := map[string]bool{} // distinct UTC offsets of first_opened_at
	withCVE := 0
	for _, item := range items {
		if err := item.Validate(); err != nil {
			t.Errorf("sample item invalid: %v", err)
		}
		if ids[item.ID] {
			t.Errorf("duplicate id %q", item.ID)
		}
		ids[item.ID] = true
		categories[item.Type] = true
		urgencies[item.Urgency] = true
		if item.Urgency < 0.5 || item.Urgency > 10 {
			t.Errorf("urgency %v outside 0.5..10", item.Urgency)
		}
		first, err := time.Parse(time.RFC3339Nano, item.FirstOpenedAt)
		if err != nil {
			t.Errorf("first_opened_at %q: %v", item.FirstOpenedAt, err)
		}
		offsets[first.Format("Z07:00")] = true
		if len(item.CVEs) > 0 {
			withCVE++
		}
		text := strings.Join([]string{item.Title, item.Summary, item.Description, item.Asset}, " ")
		for _, h := range host.FindAllString(text, -1) {
			if !allowedHost.MatchString(h) {
				t.Errorf("item %s uses a real-looking hostname %q", item.ID, h)
			}
		}
		for _, addr := range ip.FindAllString(text, -1) {
			if !allowedIP.MatchString(addr) {
				t.Errorf("item %s uses a non-documentation IP %q", item.ID, addr)
			}
		}
		data, err := json.Marshal(item)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ionix.Decode(data)
		if err != nil {
			t.Fatalf("sample item does not decode: %v", err)
		}
		if !reflect.DeepEqual(back, item) {
			t.Errorf("sample item does not round-trip\n got %#v\nwant %#v", back, item)
		}
	}
	for _, c := range []string{"Vulnerability", "PKI", "DNS", "Cloud", "Email Security", "Web"} {
		if !categories[c] {
			t.Errorf("category %q missing from the sample", c)
		}
	}
	for _, u := range []float64{10, 9.0, 8.9, 7.0, 6.9, 0.5} {
		if !urgencies[u] {
			t.Errorf("boundary urgency %v missing from the sample", u)
		}
	}
	if len(offsets) < 4 {
		t.Errorf("first_opened_at uses only %d time zones: %v", len(offsets), offsets)
	}
	if withCVE == 0 {
		t.Error("no sample item carries CVEs")
	}
}

func TestSampleItemsSmallSampleCoversCategories(t *testing.T) {
	categories := map[string]bool{}
	for _, item := range ionix.SampleItems(8, 99) {
		categories[item.Type] = true
	}
	if len(categories) != 8 {
		t.Errorf("8 items cover %d categories, want 8", len(categories))
	}
}
