package ionix

import (
	"encoding/base64"
	"strings"
)

// DefaultSubjectPrefix is the subject prefix of action-item events; the full
// subject is <prefix>.<event>.<category token>.
const DefaultSubjectPrefix = "ionix.action_items"

// CategoryToken turns an action item type into a subject token: lower-cased,
// every character outside [a-z0-9_-] replaced by "_" ("Email Security" ->
// "email_security"). An empty type gives "_", so the token is never empty.
func CategoryToken(typ string) string {
	if typ == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(typ))
	for _, r := range strings.ToLower(typ) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Subject is the subject an event of an item of type typ is published on:
// Subject("", EventOpened, "Email Security") ==
// "ionix.action_items.opened.email_security". An empty prefix means
// DefaultSubjectPrefix; a trailing dot on the prefix is ignored.
func Subject(prefix string, ev Event, typ string) string {
	return SubjectPrefix(prefix) + "." + CategoryToken(string(ev)) + "." + CategoryToken(typ)
}

// SubjectPrefix returns prefix without a trailing dot, or DefaultSubjectPrefix
// when prefix is empty.
func SubjectPrefix(prefix string) string {
	prefix = strings.TrimSuffix(strings.TrimSpace(prefix), ".")
	if prefix == "" {
		return DefaultSubjectPrefix
	}
	return prefix
}

// keyTokenMarker starts an encoded KeyToken; it never occurs in an id used as is.
const keyTokenMarker = "="

// KeyToken turns a free-text action item id into a string that is safe both
// as one NATS subject token and as a JetStream KV key. An id made only of
// [A-Za-z0-9_-] is returned unchanged; any other id becomes "=" followed by
// its unpadded base64url encoding. Different ids always give different
// tokens.
func KeyToken(id string) string {
	if id != "" && isPlainToken(id) {
		return id
	}
	return keyTokenMarker + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// IDFromKeyToken reverses KeyToken.
func IDFromKeyToken(token string) (string, bool) {
	encoded, found := strings.CutPrefix(token, keyTokenMarker)
	if !found {
		return token, token != "" && isPlainToken(token)
	}
	id, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return "", false
	}
	return string(id), true
}

func isPlainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
