package mapping_test

import (
	"math"
	"testing"

	"github.com/ionix/ionixsnow/mapping"
)

func TestUrgency(t *testing.T) {
	tests := []struct {
		ionix float64
		want  string
	}{
		{10, "1"}, {9.3, "1"}, {9.0, "1"},
		{8.99, "2"}, {8.9, "2"}, {7.0, "2"},
		{6.99, "3"}, {6.9, "3"}, {0.5, "3"}, {0, "3"},
		{math.NaN(), "3"},
	}
	for _, tt := range tests {
		if got := mapping.Urgency(tt.ionix); got != tt.want {
			t.Errorf("Urgency(%v) = %q, want %q", tt.ionix, got, tt.want)
		}
	}
}

func TestImpact(t *testing.T) {
	tests := []struct {
		name      string
		typ       string
		overrides map[string]string
		want      string
	}{
		{"vulnerability is high", "Vulnerability", nil, "1"},
		{"lower case", "vulnerability", nil, "1"},
		{"upper case", "VULNERABILITY", nil, "1"},
		{"PKI is medium", "PKI", nil, "2"},
		{"DNS is medium", "DNS", nil, "2"},
		{"Cloud is medium", "Cloud", nil, "2"},
		{"other is medium", "Email Security", nil, "2"},
		{"override wins", "Vulnerability", map[string]string{"Vulnerability": "3"}, "3"},
		{"override key any case", "email security", map[string]string{"Email Security": "1"}, "1"},
		{"override by word", "DNS", map[string]string{"dns": "Low"}, "3"},
		{"invalid override ignored", "Vulnerability", map[string]string{"vulnerability": "urgent"}, "1"},
		{"override for another type", "PKI", map[string]string{"DNS": "3"}, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mapping.Impact(tt.typ, tt.overrides); got != tt.want {
				t.Errorf("Impact(%q, %v) = %q, want %q", tt.typ, tt.overrides, got, tt.want)
			}
		})
	}
}

func TestImpactOverrideCaseCollisionIsDeterministic(t *testing.T) {
	overrides := map[string]string{"DNS": "1", "dns": "3", "Dns": "2"}
	for range 50 {
		if got := mapping.Impact("dNs", overrides); got != "1" { // "DNS" sorts first
			t.Fatalf("Impact = %q, want the override of the first key in byte order", got)
		}
	}
	if got := mapping.Impact("dns", overrides); got != "3" {
		t.Errorf("exact key not preferred: %q", got)
	}
}

func TestCategory(t *testing.T) {
	overrides := map[string]string{"email security": "Email", "DNS": " "}
	tests := map[string]string{
		"Email Security": "Email",
		"EMAIL SECURITY": "Email",
		"DNS":            "DNS", // blank override ignored
		"Vulnerability":  "Vulnerability",
	}
	for typ, want := range tests {
		if got := mapping.Category(typ, overrides); got != want {
			t.Errorf("Category(%q) = %q, want %q", typ, got, want)
		}
	}
}
