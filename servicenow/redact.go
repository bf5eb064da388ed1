package servicenow

import (
	"slices"
	"strings"
	"sync"

	"github.com/ionix/ionixsnow/remote"
)

// Redacted replaces secret values in anything the client reports.
const Redacted = "[REDACTED]"

// maxDynamicSecrets bounds how many forms of issued tokens are remembered
// for redaction; older ones are long expired.
const maxDynamicSecrets = 32

// secrets knows every secret value the client holds, configured or issued,
// and removes them from text that reaches an error string or a log entry.
type secrets struct {
	mu      sync.RWMutex
	static  []string // client secret, password, configured refresh token
	dynamic []string // issued access and refresh tokens, newest last
}

func newSecrets(values ...string) *secrets {
	s := &secrets{}
	for _, v := range values {
		for _, form := range remote.SecretForms(v) {
			if !slices.Contains(s.static, form) {
				s.static = append(s.static, form)
			}
		}
	}
	return s
}

// add remembers an issued token.
func (s *secrets) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range remote.SecretForms(v) {
		if slices.Contains(s.static, f) || slices.Contains(s.dynamic, f) {
			continue
		}
		if len(s.dynamic) >= maxDynamicSecrets {
			s.dynamic = slices.Delete(s.dynamic, 0, 1)
		}
		s.dynamic = append(s.dynamic, f)
	}
}

// redact replaces every secret value in text with Redacted, longest first
// (so that a secret containing another is removed whole).
func (s *secrets) redact(text string) string {
	s.mu.RLock()
	all := append(slices.Clone(s.static), s.dynamic...)
	s.mu.RUnlock()
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	for _, v := range all {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, Redacted)
		}
	}
	return text
}
