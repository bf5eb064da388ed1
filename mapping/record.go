package mapping

import (
	"fmt"
	"strings"
	"time"

	"github.com/ionix/ionixsnow/ionix"
)

// Record is one Import Set row: staging field name (already prefixed) ->
// string value.
type Record map[string]string

// Record field names before the prefix (SPEC §4, and the closing fields).
const (
	FieldName          = "name"
	FieldBody          = "body"
	FieldCategory      = "category"
	FieldImpact        = "impact"
	FieldUrgency       = "urgency"
	FieldOpeningDate   = "opening_date"
	FieldCorrelationID = "correlation_id"

	FieldState      = "state"
	FieldCloseCode  = "close_code"
	FieldCloseNotes = "close_notes"
)

// Fields lists the fields of every record, in the order of SPEC §4.
func Fields() []string {
	return []string{FieldName, FieldBody, FieldCategory, FieldImpact, FieldUrgency, FieldOpeningDate, FieldCorrelationID}
}

// ClosingFields lists the fields a closing record adds to Fields.
func ClosingFields() []string {
	return []string{FieldState, FieldCloseCode, FieldCloseNotes}
}

// MaxNameLen is the most runes of a name (the name column is set to 4,000
// characters in the integration guide; incident short_description is
// shorter and ServiceNow cuts it there).
const MaxNameLen = 4000

// nameTruncationMarker ends a name that was cut.
const nameTruncationMarker = "…"

// Values of a closing record.
const (
	StateResolved = "6"                  // incident state Resolved
	CloseCode     = "Resolved by caller" // the caller, IONIX, no longer detects the finding
)

// StateInProgress is the state of a reopening record: ServiceNow's own Reopen
// moves a Resolved incident to In Progress.
const StateInProgress = "2"

// ToRecord maps an item to its Import Set record: name, body, category,
// impact, urgency, opening_date and correlation_id, each with the field
// prefix. Every field is present; opening_date is "" when first_opened_at is
// missing or is not an RFC 3339 time — such an item is still sent (an
// unreadable date must not lose the finding), and its body says why the
// date is empty.
//
// The only error is an item that fails ionix.ActionItem.Validate (no id,
// title or type, or an urgency outside 0..10): without an id its correlation
// id would merge unrelated incidents. The error wraps ionix.ErrInvalid.
func ToRecord(a ionix.ActionItem, o Options) (Record, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("map action item to a ServiceNow record: %w", err)
	}
	return record(a, o), nil
}

// ClosingRecord is the record that resolves the item's incident (with
// resolve_on_close): the ToRecord fields plus state "6" (Resolved),
// close_code "Resolved by caller" and close_notes "Closed in IONIX at
// <closedAt in UTC>." It posts through the same import table and coalesces on
// the same correlation_id. A zero closedAt falls back to the item's
// last_closed_at, and to no time at all if that cannot be read.
//
// Unlike ToRecord it does not validate: call it with an item that Decode
// accepted.
func ClosingRecord(a ionix.ActionItem, o Options, closedAt time.Time) Record {
	r := record(a, o)
	r[o.Field(FieldState)] = StateResolved
	r[o.Field(FieldCloseCode)] = CloseCode
	r[o.Field(FieldCloseNotes)] = eventNote("Closed", "the finding is no longer detected", closedAt, a.LastClosedAt)
	return r
}

// ReopeningRecord is the record that reopens the item's Resolved incident when
// IONIX detects the finding again (with resolve_on_close): the ToRecord fields
// plus state "2" (In Progress, as ServiceNow's Reopen sets it) and close_notes
// "Reopened in IONIX at <reopenedAt in UTC>: …", which replaces the closing note
// (close_code is left as it is: an import cannot empty a field). A zero
// reopenedAt falls back to the item's last_opened_at, and to no time at all if
// that cannot be read. Like ClosingRecord, it does not validate.
func ReopeningRecord(a ionix.ActionItem, o Options, reopenedAt time.Time) Record {
	r := record(a, o)
	r[o.Field(FieldState)] = StateInProgress
	r[o.Field(FieldCloseNotes)] = eventNote("Reopened", "the finding is detected again", reopenedAt, a.LastOpenedAt)
	return r
}

// eventNote is "<what> in IONIX at <at, UTC> UTC: <why>." — at, else the RFC 3339
// time fallback, else no time at all.
func eventNote(what, why string, at time.Time, fallback string) string {
	if at.IsZero() {
		if t, err := parseRFC3339(fallback); err == nil {
			at = t
		}
	}
	if at.IsZero() {
		return what + " in IONIX: " + why + "."
	}
	return what + " in IONIX at " + at.UTC().Format(ServiceNowTimeLayout) + " UTC: " + why + "."
}

// record builds the record of ToRecord without validating.
func record(a ionix.ActionItem, o Options) Record {
	openingDate, err := OpeningDate(a.FirstOpenedAt)
	if err != nil {
		openingDate = "" // missing or unreadable: the body says which
	}
	return Record{
		o.Field(FieldName):          truncateRunes(oneLine(validText(a.Title)), MaxNameLen, nameTruncationMarker),
		o.Field(FieldBody):          Body(a),
		o.Field(FieldCategory):      Category(a.Type, o.CategoryOverrides),
		o.Field(FieldImpact):        Impact(a.Type, o.ImpactOverrides),
		o.Field(FieldUrgency):       Urgency(a.Urgency),
		o.Field(FieldOpeningDate):   openingDate,
		o.Field(FieldCorrelationID): CorrelationID(a.ID),
	}
}

// Category is the ServiceNow category of an item of type typ: the type as
// is, or its non-blank override (keys compared case-insensitively).
func Category(typ string, overrides map[string]string) string {
	if v, ok := lookupFold(overrides, strings.TrimSpace(typ)); ok && strings.TrimSpace(v) != "" {
		return v
	}
	return typ
}
