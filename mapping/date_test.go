package mapping_test

import (
	"errors"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
)

func TestOpeningDate(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"2024-05-01T23:30:00-05:00", "2024-05-02 04:30:00"},
		{"2024-05-01T23:30:00Z", "2024-05-01 23:30:00"},
		{"2024-05-01T01:30:00+02:00", "2024-04-30 23:30:00"},
		{"2024-03-01T03:00:00+05:30", "2024-02-29 21:30:00"}, // leap day
		{"2024-12-31T23:59:59.999999999-01:00", "2025-01-01 00:59:59"},
		{"2024-05-01T23:30:00.123456Z", "2024-05-01 23:30:00"},
		{"2024-05-01 23:30:00+00:00", "2024-05-01 23:30:00"},
		{"2024-05-01t23:30:00z", "2024-05-01 23:30:00"},
		{" 2024-05-01T23:30:00Z\n", "2024-05-01 23:30:00"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := mapping.OpeningDate(tt.in)
			if err != nil {
				t.Fatalf("OpeningDate: %v", err)
			}
			if got != tt.want {
				t.Errorf("OpeningDate(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestOpeningDateRejects(t *testing.T) {
	for _, in := range []string{"", "yesterday", "2024-05-01", "2024-05-01T23:30:00", "2024-13-01T00:00:00Z", "2024-05-01T24:00:00Z", "1714606200"} {
		t.Run(in, func(t *testing.T) {
			got, err := mapping.OpeningDate(in)
			if err == nil {
				t.Fatalf("OpeningDate(%q) = %q, want an error", in, got)
			}
			if !errors.Is(err, ionix.ErrInvalid) {
				t.Errorf("error %v does not wrap ionix.ErrInvalid", err)
			}
		})
	}
}
