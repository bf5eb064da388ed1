package ionix_test

import (
	"regexp"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
)

func TestCategoryToken(t *testing.T) {
	tests := map[string]string{
		"Email Security": "email_security",
		"Vulnerability":  "vulnerability",
		"PKI":            "pki",
		"DNS":            "dns",
		"Cloud":          "cloud",
		"web-app_2":      "web-app_2",
		"Data.Leak>*":    "data_leak__",
		"Zertifikat Ä":   "zertifikat__",
		"证书":             "__",
		"":               "_",
		" ":              "_",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := ionix.CategoryToken(in); got != want {
				t.Errorf("CategoryToken(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		prefix string
		ev     ionix.Event
		typ    string
		want   string
	}{
		{"", ionix.EventOpened, "Email Security", "ionix.action_items.opened.email_security"},
		{ionix.DefaultSubjectPrefix, ionix.EventClosed, "Vulnerability", "ionix.action_items.closed.vulnerability"},
		{"acme.ionix.", ionix.EventOpened, "DNS", "acme.ionix.opened.dns"},
		{"acme", ionix.EventOpened, "", "acme.opened._"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := ionix.Subject(tt.prefix, tt.ev, tt.typ); got != tt.want {
				t.Errorf("Subject(%q, %q, %q) = %q, want %q", tt.prefix, tt.ev, tt.typ, got, tt.want)
			}
		})
	}
}

func TestKeyToken(t *testing.T) {
	// What JetStream accepts as a KV key, minus '.', '/' and '=' which the
	// plain form never uses (so it is one subject token as well).
	validKey := regexp.MustCompile(`^[-/_=a-zA-Z0-9]+$`)
	ids := []string{"5f3c2a1e-0b6d-4c1e", "AI_1", "a.b", "a b", "=x", "*", ">", "ü", "", "a/b", "line\nbreak"}
	seen := map[string]string{}
	for _, id := range ids {
		token := ionix.KeyToken(id)
		if !validKey.MatchString(token) {
			t.Errorf("KeyToken(%q) = %q, not a valid KV key / subject token", id, token)
		}
		if other, dup := seen[token]; dup {
			t.Errorf("KeyToken(%q) = KeyToken(%q) = %q", id, other, token)
		}
		seen[token] = id
		back, ok := ionix.IDFromKeyToken(token)
		if !ok || back != id {
			t.Errorf("IDFromKeyToken(%q) = %q, %v; want %q", token, back, ok, id)
		}
	}
	if got := ionix.KeyToken("AI-1"); got != "AI-1" {
		t.Errorf("plain id changed: %q", got)
	}
}
