package config

import (
	"strings"
	"testing"
)

// TestScrub checks the rule by which secrets are scrubbed from problems: whole,
// cut, in any letter case and escaped form, and short secrets only where
// they stand as a value.
func TestScrub(t *testing.T) {
	const secret = "Cl1ent-Secret/value+x"
	var c Config
	c.ServiceNow.ClientSecret = secret
	c.ServiceNow.Password = "a"
	c.IONIX.Token = "tok"
	for _, tt := range []struct {
		name      string
		in        Problem
		want      Problem
		forbidden string // must not be in the result, letter case ignored
	}{
		{"whole, in the message", Problem{"servicenow.instance_url", "got https://" + secret + "@x"},
			Problem{"servicenow.instance_url", "got https://" + RedactedValue + "@x"}, secret},
		{"used as a key", Problem{"servicenow." + secret, "unknown key"},
			Problem{"servicenow." + RedactedValue, "unknown key"}, secret},
		{"cut short", Problem{"filter.categories", `"` + secret[:12] + `…" is too long`},
			Problem{"filter.categories", `"` + RedactedValue + `…" is too long`}, secret[:8]},
		{"upper-cased", Problem{"x", "got " + strings.ToUpper(secret)},
			Problem{"x", "got " + RedactedValue}, secret},
		{"query-escaped", Problem{"nats.url", "bad URL nats://h/?p=Cl1ent-Secret%2Fvalue%2Bx"},
			Problem{"nats.url", "bad URL nats://h/?p=" + RedactedValue}, "ent-Secret%2F"},
		{"quoted", Problem{"x", `"Cl1ent-Secret/value+x\"" is not a number`},
			Problem{"x", `"` + RedactedValue + `\"" is not ` + RedactedValue + ` number`}, secret}, // "a" is the password
		{"short secrets as values", Problem{"ionix.token_file", "password a and tok: not found (token file tokens)"},
			Problem{"ionix.token_file", "password " + RedactedValue + " and " + RedactedValue + ": not found (token file tokens)"}, ""},
		{"short secrets inside words", Problem{"servicenow.password", "a password is required with the token"},
			Problem{"servicenow.password", RedactedValue + " password is required with the token"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := c.scrub(Problems{tt.in})[0]
			if got != tt.want {
				t.Errorf("scrub(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
			if tt.forbidden != "" && strings.Contains(strings.ToLower(got.Key+got.Message), strings.ToLower(tt.forbidden)) {
				t.Errorf("scrub(%q) = %q keeps %q", tt.in, got, tt.forbidden)
			}
		})
	}
}
