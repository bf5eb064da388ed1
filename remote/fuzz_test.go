package remote_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/remote"
)

// FuzzRedact: whatever surrounds a secret, in whatever letter case, and however the
// result is cut afterwards, no 8 characters of the secret survive redaction.
func FuzzRedact(f *testing.F) {
	f.Add("client-secret-0123", "p[", "]ssword", true, 60)
	f.Add("Zz9!Zz9!Zz9!", strings.Repeat("x", 179), "&grant_type=password", false, 200)
	f.Add("ümlaut-geheimnis", "", "", true, 5)
	f.Fuzz(func(t *testing.T, secret, before, after string, upper bool, cut int) {
		if len(secret) < remote.MinFragment || !utf8.ValidString(secret+before+after) {
			return // secrets come from YAML and the environment: text
		}
		r := remote.NewRedactor("[REDACTED]", secret)
		shown := secret
		if upper {
			shown = strings.ToUpper(secret)
		}
		out := r.Redact(before + shown + after)
		if cut > 0 {
			out = remote.Clip(out, cut)
		}
		lowerOut, lowerSecret := strings.ToLower(out), strings.ToLower(secret)
		for i := 0; i+remote.MinFragment <= len(lowerSecret); i++ {
			frag := lowerSecret[i : i+remote.MinFragment]
			if strings.Contains(lowerOut, frag) && !strings.Contains(strings.ToLower(before+after), frag) {
				t.Fatalf("fragment %q of the secret survives in %q", frag, out)
			}
		}
	})
}
