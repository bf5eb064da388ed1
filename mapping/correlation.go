package mapping

import "github.com/ionix/ionixsnow/ionix"

// MaxCorrelationIDLen is the length of the incident correlation_id column.
const MaxCorrelationIDLen = 100

// CorrelationIDPrefix starts every correlation id ionixsnow writes.
const CorrelationIDPrefix = "ionix:"

// CorrelationID is the coalesce key of an item's incident: "ionix:<id>".
//
// The limit is counted in bytes, which keeps the value within 100
// characters however ServiceNow counts them. An id too long for it keeps as
// much of its beginning as fits (cut on a rune boundary) followed by "~" and
// 16 hex characters of the SHA-256 of the whole id, so different long ids
// still get different correlation ids, and the same id always the same one.
// Invalid UTF-8 in the id becomes U+FFFD.
//
// This is ionix.Bound, the rule every bounded form of an id follows.
func CorrelationID(id string) string {
	return ionix.Bound(CorrelationIDPrefix+validText(id), id, MaxCorrelationIDLen, "~")
}
