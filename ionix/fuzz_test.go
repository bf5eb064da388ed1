package ionix_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
)

// FuzzDecode checks that Decode never panics, that what it accepts is valid,
// and that an accepted item survives encoding and decoding unchanged.
func FuzzDecode(f *testing.F) {
	for _, item := range ionix.SampleItems(12, 3) {
		data, err := json.Marshal(item)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{
		`{"id":"AI-1","title":"Open RDP on 203.0.113.45","type":"Network","urgency":7}`,
		`{"id":"AI-2","title":{"label":"Missing DMARC record on example.net"},"type":"Email Security","urgency":{"urgency":9.0},"tags":[{"name":"email"},"spf",3,null],"cves":[{"id":"CVE-2024-3400"}]}`,
		`{"id":12,"title":"x","type":"DNS","urgency":-0,"is_open":"no","description":{"a":"<&>"},"x":"\u2028"}`,
		`{"id":"a","title":"t","type":"PKI","urgency":"9.3"}`,
		`{"id":"a","title":"t","type":"PKI","urgency":{"urgency":10.01}}`,
		`{"id":"a","title":{"label":""},"type":"PKI","urgency":1e999}`,
		`{"id":"a\ud800","title":"\xff","type":"\u00e9","urgency":1e-400,"tags":{"x":"\xfe"}}`,
		`[1,2,3]`, `null`, `"x"`, ``, `{`, "\x00",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		item, err := ionix.Decode(data)
		if err != nil {
			return
		}
		if err := item.Validate(); err != nil {
			t.Fatalf("Decode accepted an item that Validate rejects: %v\ninput: %q", err, data)
		}
		viaMethod, err := item.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v\ninput: %q", err, data)
		}
		viaJSON, err := json.Marshal(item)
		if err != nil {
			t.Fatalf("json.Marshal: %v\ninput: %q", err, data)
		}
		if string(viaMethod) != string(viaJSON) {
			t.Fatalf("MarshalJSON and json.Marshal differ:\n%s\n%s", viaMethod, viaJSON)
		}
		again, err := ionix.Decode(viaMethod)
		if err != nil {
			t.Fatalf("Decode(Marshal(item)): %v\ninput: %q\nencoded: %s", err, data, viaMethod)
		}
		if !reflect.DeepEqual(again, item) {
			t.Fatalf("round trip changed the item\ninput: %q\nfirst:  %#v\nsecond: %#v", data, item, again)
		}
		if ionix.MsgID(again, ionix.EventOpened) != ionix.MsgID(item, ionix.EventOpened) {
			t.Fatalf("round trip changed the MsgID")
		}
	})
}
