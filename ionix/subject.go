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
// "email_security"). An empty type gives "_", so the token is never empty. A
// token longer than MaxCategoryTokenLen is bounded (Bound, mark "~", which the
// token alphabet never holds).
func CategoryToken(typ string) string {
	if typ == "" {
		return "_"
	}
	token := categoryToken(typ)
	return Bound(token, token, MaxCategoryTokenLen, "~")
}

func categoryToken(typ string) string {
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

// boundTokenMarker stands before the digest of a bounded KeyToken; neither the
// plain nor the base64url form ever holds it.
const boundTokenMarker = "/"

// KeyToken turns a free-text action item id into a string that is safe both
// as one NATS subject token and as a JetStream KV key. An id made only of
// [A-Za-z0-9_-] is returned unchanged; any other id becomes "=" followed by
// its unpadded base64url encoding. A token longer than MaxKeyTokenLen is
// bounded (Bound, mark "/"): its beginning, "/" and the digest of the id.
// Different ids give different tokens (bounded ones up to the 64-bit digest).
func KeyToken(id string) string {
	token := id
	if id == "" || !isPlainToken(id) {
		token = keyTokenMarker + base64.RawURLEncoding.EncodeToString([]byte(id))
	}
	return Bound(token, id, MaxKeyTokenLen, boundTokenMarker)
}

// IDFromKeyToken reverses KeyToken; a bounded token (of a long id) does not
// name its id, and ok is false for it.
func IDFromKeyToken(token string) (string, bool) {
	if strings.Contains(token, boundTokenMarker) {
		return "", false
	}
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
