package mapping_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/mapping"
)

func TestCorrelationID(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct {
		name string
		id   string
		want string // "" = only check the limits
	}{
		{"short", "5f3c2a1e-0b6d", "ionix:5f3c2a1e-0b6d"},
		{"exactly at the limit", strings.Repeat("x", 94), "ionix:" + strings.Repeat("x", 94)},
		{"one over", strings.Repeat("x", 95), ""},
		{"long ascii", long, ""},
		{"long multi-byte", strings.Repeat("证", 60), ""},
		{"long emoji", strings.Repeat("🔒", 40), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapping.CorrelationID(tt.id)
			if tt.want != "" && got != tt.want {
				t.Errorf("CorrelationID = %q, want %q", got, tt.want)
			}
			if len(got) > mapping.MaxCorrelationIDLen {
				t.Errorf("CorrelationID has %d bytes, want <= %d", len(got), mapping.MaxCorrelationIDLen)
			}
			if !utf8.ValidString(got) || !strings.HasPrefix(got, "ionix:") {
				t.Errorf("CorrelationID = %q: invalid UTF-8 or wrong prefix", got)
			}
			if got != mapping.CorrelationID(tt.id) {
				t.Error("CorrelationID is not stable")
			}
		})
	}
	// Long ids that share their first 100 bytes stay apart.
	a, b := mapping.CorrelationID(long+"1"), mapping.CorrelationID(long+"2")
	if a == b {
		t.Errorf("long ids collide: %q", a)
	}
}
