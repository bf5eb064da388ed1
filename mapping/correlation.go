package mapping

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxCorrelationIDLen is the length of the incident correlation_id column.
const MaxCorrelationIDLen = 100

// CorrelationIDPrefix starts every correlation id ionixsnow writes.
const CorrelationIDPrefix = "ionix:"

// correlationHashLen is how many hex characters of a SHA-256 stand for the
// cut-off tail of a long id.
const correlationHashLen = 16

// CorrelationID is the coalesce key of an item's incident: "ionix:<id>".
//
// The limit is counted in bytes, which keeps the value within 100
// characters however ServiceNow counts them. An id too long for it keeps as
// much of its beginning as fits (cut on a rune boundary) followed by "~" and
// 16 hex characters of the SHA-256 of the whole id, so different long ids
// still get different correlation ids, and the same id always the same one.
// Invalid UTF-8 in the id becomes U+FFFD.
func CorrelationID(id string) string {
	full := CorrelationIDPrefix + validText(id)
	if len(full) <= MaxCorrelationIDLen {
		return full
	}
	sum := sha256.Sum256([]byte(id))
	tail := "~" + hex.EncodeToString(sum[:])[:correlationHashLen]
	return prefixBytes(full, MaxCorrelationIDLen-len(tail)) + tail
}
