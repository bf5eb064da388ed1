package ionix

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"unicode/utf8"
)

// Bounds on what an action item id, category or event puts into a NATS subject, a
// KV key or a header. The NATS protocol closes a connection whose control line (the
// subject and reply of a publish or request) exceeds 4,096 bytes, so every form of
// an id the pipeline builds is bounded by one rule, Bound.
const (
	// MaxKeyTokenLen bounds a KeyToken: a KV key (ticket ledger, poller state)
	// with its bucket and API prefix stays far below the control-line limit.
	MaxKeyTokenLen = 512
	// MaxCategoryTokenLen bounds a CategoryToken, and so the last token of an
	// event's subject.
	MaxCategoryTokenLen = 128
	// MaxMsgIDIDLen bounds the id part of a Nats-Msg-Id.
	MaxMsgIDIDLen = 512
)

// DigestLen is the length of Digest in hex characters.
const DigestLen = 16

// Digest is the short digest that stands for the cut-off tail of a long value:
// the first 16 hex characters of the SHA-256 of the whole value.
func Digest(whole string) string {
	sum := sha256.Sum256([]byte(whole))
	return hex.EncodeToString(sum[:])[:DigestLen]
}

// Bound is the one rule for a bounded form of a free-text value: form (some
// encoding of whole) when it has at most max bytes; otherwise as much of its
// beginning as fits, cut on a rune boundary, then mark, then Digest(whole). The
// same value always gets the same form, and two values whose forms had to be cut
// differ in their digests (64 bits of SHA-256) even when their beginnings agree.
// The result never exceeds max bytes (for max > len(mark)+DigestLen).
func Bound(form, whole string, max int, mark string) string {
	if len(form) <= max {
		return form
	}
	tail := mark + Digest(whole)
	return prefixBytes(form, max-len(tail)) + tail
}

// prefixBytes returns the longest prefix of s that has at most n bytes and ends on
// a rune boundary.
func prefixBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxShownID bounds an id shown in a message (ShortID, QuoteID).
const maxShownID = 80

// ShortID is an id as a log field or a message shows it: cut to 80 bytes on a rune
// boundary, with "…" when longer, so that a hostile 1 MB id does not become a 1 MB
// log line or error.
func ShortID(id string) string {
	if len(id) > maxShownID {
		return prefixBytes(id, maxShownID) + "…"
	}
	return id
}

// QuoteID is ShortID Go-quoted (the "…" outside the quotes).
func QuoteID(id string) string {
	if len(id) > maxShownID {
		return strconv.Quote(prefixBytes(id, maxShownID)) + "…"
	}
	return strconv.Quote(id)
}
