package ionix_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
)

// benchSampleN is how many distinct sample items a benchmark cycles through: enough
// to cover every category and finding template, few enough to stay in cache as a
// consumer's hot path would.
const benchSampleN = 256

// benchBodies returns the sample items marshalled as the IONIX API sends them
// (title {"label": ...}, urgency {"urgency": ...}), or, with flat, with a plain
// string title and a plain number urgency (the other shape SPEC §2 accepts).
func benchBodies(b *testing.B, flat bool) [][]byte {
	b.Helper()
	items := ionix.SampleItems(benchSampleN, 1)
	bodies := make([][]byte, len(items))
	for i, it := range items {
		raw, err := json.Marshal(it)
		if err != nil {
			b.Fatal(err)
		}
		if flat {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				b.Fatal(err)
			}
			obj["title"], _ = json.Marshal(it.Title)
			obj["urgency"], _ = json.Marshal(it.Urgency)
			if raw, err = json.Marshal(obj); err != nil {
				b.Fatal(err)
			}
		}
		bodies[i] = raw
	}
	return bodies
}

// largeItem is an action item at the heavy end of what IONIX sends: a 10 kB
// description, 200 tags (half strings, half objects) and 100 CVEs as objects.
func largeItem() ionix.ActionItem {
	it := ionix.SampleItems(1, 7)[0]
	it.Description = strings.Repeat("The affected service answers with a banner that names a vulnerable version. ", 130)
	it.Tags = nil
	for i := range 200 {
		it.Tags = append(it.Tags, fmt.Sprintf("tag-%03d", i))
	}
	it.CVEs = nil
	for i := range 100 {
		it.CVEs = append(it.CVEs, fmt.Sprintf("CVE-2024-%05d", 10000+i))
	}
	return it
}

// largeBody is largeItem's JSON with half of the tags and every CVE written as
// objects, the lenient shapes Decode reads.
func largeBody(b *testing.B) []byte {
	b.Helper()
	it := largeItem()
	raw, err := json.Marshal(it)
	if err != nil {
		b.Fatal(err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		b.Fatal(err)
	}
	tags := make([]any, len(it.Tags))
	for i, tag := range it.Tags {
		tags[i] = tag
		if i%2 == 1 {
			tags[i] = map[string]any{"id": i, "name": tag}
		}
	}
	cves := make([]any, len(it.CVEs))
	for i, cve := range it.CVEs {
		cves[i] = map[string]any{"id": cve, "score": 9.8}
	}
	obj["tags"], _ = json.Marshal(tags)
	obj["cves"], _ = json.Marshal(cves)
	if raw, err = json.Marshal(obj); err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkDecode decodes and validates one action item per op (the consumer does
// this once per message), cycling through distinct items.
//
//   - sample/label+object: SampleItems as the IONIX API sends them (≈1 kB each).
//   - sample/string+number: the same with a plain string title and number urgency.
//   - large: one item with a 10 kB description, 200 tags and 100 CVE objects.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name   string
		bodies func(*testing.B) [][]byte
	}{
		{"sample/label+object", func(b *testing.B) [][]byte { return benchBodies(b, false) }},
		{"sample/string+number", func(b *testing.B) [][]byte { return benchBodies(b, true) }},
		{"large", func(b *testing.B) [][]byte { return [][]byte{largeBody(b)} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bodies := bc.bodies(b)
			total := 0
			for _, body := range bodies {
				if _, err := ionix.Decode(body); err != nil {
					b.Fatalf("sample does not decode: %v", err)
				}
				total += len(body)
			}
			b.SetBytes(int64(total / len(bodies)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := ionix.Decode(bodies[i%len(bodies)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkFingerprint hashes the fields that reach the incident (once per publish
// and once per consumed message).
func BenchmarkFingerprint(b *testing.B) {
	for _, bc := range []struct {
		name  string
		items []ionix.ActionItem
	}{
		{"sample", ionix.SampleItems(benchSampleN, 1)},
		{"large", []ionix.ActionItem{largeItem()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if fp := bc.items[i%len(bc.items)].Fingerprint(); len(fp) != ionix.FingerprintLen {
					b.Fatalf("fingerprint %q", fp)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkMsgID builds the Nats-Msg-Id of an opened event: the escaped id, the
// event and the fingerprint.
func BenchmarkMsgID(b *testing.B) {
	items := ionix.SampleItems(benchSampleN, 1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if id := ionix.MsgID(items[i%len(items)], ionix.EventOpened); id == "" {
			b.Fatal("empty message id")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
