package ionixapi

import (
	"slices"
	"strings"

	"github.com/ionix/ionixsnow/remote"
)

// Redacted replaces the token in anything the client reports.
const Redacted = "[REDACTED]"

// redactor removes the token from text that reaches an error or a log entry.
type redactor struct {
	forms []string // the token as text may show it, longest first
}

// newRedactor knows the forms a secret may take in text: as is, and query-
// or path-escaped (as a URL or a server echoing a request would show it).
func newRedactor(secret string) redactor {
	forms := remote.SecretForms(secret)
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return redactor{forms: forms}
}

// redact replaces every form of the secret in text with Redacted.
func (r redactor) redact(text string) string {
	for _, f := range r.forms {
		if strings.Contains(text, f) {
			text = strings.ReplaceAll(text, f, Redacted)
		}
	}
	return text
}
