package ionix_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
)

func TestMarshalRoundTrip(t *testing.T) {
	inputs := map[string]string{
		"string title, number urgency": `{"id":"a","title":"Open RDP","type":"Network","urgency":7}`,
		"unknown fields":               `{"id":"a","title":{"label":"x"},"type":"DNS","urgency":{"urgency":0.5},"groups":[{"id":1,"name":"Prod"}],"acknowledged_by":{"email":"sec@example.com"},"zzz":null}`,
		"html-like text":               `{"id":"<a&b>","title":"x < y & z","type":"Web","urgency":9,"x":"<script>"}`,
		"odd optional shapes":          `{"id":"a","title":"x","type":"Cloud","urgency":1,"description":5,"is_open":"yes","tags":{"name":"one"}}`,
		"unicode":                      `{"id":"ü-1","title":"证书已过期 🔒","type":"PKI","urgency":6.9,"summary":"line\u2028sep"}`,
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			first, err := ionix.Decode([]byte(in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			data, err := json.Marshal(first)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			second, err := ionix.Decode(data)
			if err != nil {
				t.Fatalf("Decode(Marshal): %v\n%s", err, data)
			}
			if !reflect.DeepEqual(first, second) {
				t.Errorf("round trip changed the item\n first: %#v\nsecond: %#v\n  json: %s", first, second, data)
			}
		})
	}
}

func TestMarshalShape(t *testing.T) {
	isOpen := false
	item := ionix.ActionItem{
		ID: "AI-1", Title: "Missing DMARC record on example.net", Type: "Email Security", Urgency: 7,
		IsOpen: &isOpen, Tags: []string{"email"},
		Extra: map[string]json.RawMessage{
			"groups": json.RawMessage(` [ {"name": "Prod"} ] `),
			"type":   json.RawMessage(`"shadowed"`), // the typed field wins
			"note":   json.RawMessage(`"a<b"`),
		},
	}
	data, err := json.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"AI-1","title":{"label":"Missing DMARC record on example.net"},"type":"Email Security",` +
		`"urgency":{"urgency":7},"is_open":false,"tags":["email"],"groups":[{"name":"Prod"}],"note":"a\u003cb"}`
	if string(data) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", data, want)
	}
}

func TestMarshalRejectsNonNumbers(t *testing.T) {
	for _, u := range []float64{nan(), inf()} {
		if _, err := json.Marshal(ionix.ActionItem{ID: "a", Title: "t", Type: "DNS", Urgency: u}); err == nil {
			t.Errorf("Marshal with urgency %v succeeded", u)
		}
	}
	_, err := json.Marshal(ionix.ActionItem{ID: "a", Extra: map[string]json.RawMessage{"x": json.RawMessage("{")}})
	if err == nil || !strings.Contains(err.Error(), `extra field "x"`) {
		t.Errorf("Marshal with broken Extra = %v, want an error naming the field", err)
	}
}
