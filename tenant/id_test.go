package tenant_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/tenant"
)

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "": refused
	}{
		{"acme", "acme"},
		{"ACME-Corp", "acme-corp"},
		{"a", "a"},
		{"0day_labs-2", "0day_labs-2"},
		{strings.Repeat("x", 63), strings.Repeat("x", 63)},
		{strings.Repeat("x", 64), ""},
		{"", ""},
		{"-acme", ""},
		{"_acme", ""},
		{"acme.corp", ""},
		{"acme corp", ""},
		{"acme/x", ""},
		{"acme*", ""},
		{"acme>", ""},
		{"café", ""},
		{"acme\n", ""},
		{"window", ""},
		{"Opened", ""},
		{"closed", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := tenant.ParseID(tc.in)
			if tc.want == "" {
				if !errors.Is(err, tenant.ErrInvalidID) || !strings.Contains(err.Error(), "[a-z0-9][a-z0-9_-]{0,62}") && !strings.Contains(err.Error(), "reserved") {
					t.Fatalf("ParseID(%q) = %q, %v; want ErrInvalidID naming the rule", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
