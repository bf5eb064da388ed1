package mapping_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

func TestFilterAllows(t *testing.T) {
	item := func(typ string, urgency float64) ionix.ActionItem {
		return ionix.ActionItem{ID: "AI-1", Title: "t", Type: typ, Urgency: urgency}
	}
	tests := []struct {
		name       string
		filter     mapping.Filter
		item       ionix.ActionItem
		wantOK     bool
		wantReason string
	}{
		{"no filter", mapping.Filter{}, item("DNS", 0), true, ""},
		{"threshold equal passes", mapping.Filter{UrgencyThreshold: 7}, item("DNS", 7.0), true, ""},
		{"just below threshold", mapping.Filter{UrgencyThreshold: 7}, item("DNS", 6.99), false, "urgency"},
		{"above threshold", mapping.Filter{UrgencyThreshold: 7}, item("DNS", 10), true, ""},
		{"threshold 10 with 10", mapping.Filter{UrgencyThreshold: 10}, item("DNS", 10), true, ""},
		{"threshold 1 with 0.5", mapping.Filter{UrgencyThreshold: 1}, item("DNS", 0.5), false, "urgency"},
		{"NaN never passes", mapping.Filter{UrgencyThreshold: 1}, item("DNS", nan()), false, "urgency"},
		{"category exact", mapping.Filter{Categories: []string{"Vulnerability"}}, item("Vulnerability", 5), true, ""},
		{"category lower case", mapping.Filter{Categories: []string{"vulnerability"}}, item("Vulnerability", 5), true, ""},
		{"category upper case", mapping.Filter{Categories: []string{"VULNERABILITY"}}, item("Vulnerability", 5), true, ""},
		{"item type in other case", mapping.Filter{Categories: []string{"Email Security"}}, item("email security", 5), true, ""},
		{"same subject token", mapping.Filter{Categories: []string{"email_security"}}, item("Email Security", 5), true, ""},
		{"other category", mapping.Filter{Categories: []string{"PKI", "DNS"}}, item("Cloud", 9), false, "category"},
		{"category checked before urgency", mapping.Filter{Categories: []string{"PKI"}, UrgencyThreshold: 9}, item("Cloud", 1), false, "category"},
		{"category ok, urgency low", mapping.Filter{Categories: []string{"PKI"}, UrgencyThreshold: 9}, item("pki", 8.9), false, "urgency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := tt.filter.Allows(tt.item)
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("Allows = %v, %q; want %v, %q", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

func TestFilterSubjects(t *testing.T) {
	tests := []struct {
		name       string
		categories []string
		prefix     string
		want       []string
	}{
		{"all", nil, "ionix.action_items", []string{"ionix.action_items.*.*"}},
		{"all, default prefix", []string{}, "", []string{"ionix.action_items.*.*"}},
		{"all of a tenant", nil, "ionix.action_items.acme", []string{"ionix.action_items.acme.*.*"}},
		{"some", []string{"Vulnerability", "Email Security"}, "ionix.action_items",
			[]string{"ionix.action_items.*.vulnerability", "ionix.action_items.*.email_security"}},
		{"deduplicated by token", []string{"PKI", "pki", "Email Security", "email_security", "EMAIL SECURITY"}, "acme",
			[]string{"acme.*.pki", "acme.*.email_security"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapping.Filter{Categories: tt.categories}.FilterSubjects(tt.prefix)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FilterSubjects = %q, want %q", got, tt.want)
			}
		})
	}
}

// The server filter (subjects) and Allows agree: every item published on a
// subject matched by FilterSubjects passes the category check.
func TestFilterSubjectsAgreeWithAllows(t *testing.T) {
	f := mapping.Filter{Categories: []string{"vulnerability", "EMAIL SECURITY", "Cloud"}}
	subjects := f.FilterSubjects("")
	for _, item := range ionix.SampleItems(100, 11) {
		subject := ionix.Subject("", ionix.EventOpened, item.Type)
		delivered := false
		for _, s := range subjects {
			delivered = delivered || matchSubject(s, subject)
		}
		ok, reason := f.Allows(item)
		if delivered != (ok || reason != mapping.ReasonCategory) {
			t.Errorf("%s: delivered by the server = %v, Allows = %v %q", item.Type, delivered, ok, reason)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	if err := (mapping.Filter{UrgencyThreshold: 1}).Validate(); err != nil {
		t.Errorf("default filter invalid: %v", err)
	}
	err := mapping.Filter{Categories: []string{"DNS", " "}, UrgencyThreshold: 11}.Validate()
	if err == nil || !strings.Contains(err.Error(), "category 2 is empty") || !strings.Contains(err.Error(), "urgency threshold 11 outside 1-10") {
		t.Errorf("Validate = %v", err)
	}
}

// matchSubject matches a NATS subject against a filter with * and >.
func matchSubject(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}
