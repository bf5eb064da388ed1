package ionix

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Event is the kind of action-item event on the stream.
type Event string

// The events IONIX publishes for an action item.
const (
	EventOpened Event = "opened"
	EventClosed Event = "closed"
)

// ParseEvent reads an event name such as the value of the Ionix-Event header.
// It accepts any letter case and surrounding spaces.
func ParseEvent(s string) (Event, error) {
	switch ev := Event(strings.ToLower(strings.TrimSpace(s))); ev {
	case EventOpened, EventClosed:
		return ev, nil
	}
	return "", fmt.Errorf("unknown action item event %q (want %q or %q)", s, EventOpened, EventClosed)
}

// ErrInvalid is wrapped by every decoding and validation failure.
var ErrInvalid = errors.New("invalid action item")

// InvalidError describes why an action item was rejected. It wraps
// ErrInvalid, so errors.Is(err, ErrInvalid) holds for it.
type InvalidError struct {
	ID       string   // the item's id when it could be read, else ""
	Problems []string // one plain sentence per problem, e.g. "urgency 11 outside 0-10"
}

// maxIDInMessage bounds how much of an id an error message repeats.
const maxIDInMessage = 80

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	if strings.TrimSpace(e.ID) != "" {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(cutRunes(e.ID, maxIDInMessage)))
	}
	if len(e.Problems) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Problems, "; "))
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// ActionItem is one IONIX action item (an attack-surface finding).
type ActionItem struct {
	ID            string
	Title         string // from "title": either {"label": "..."} or a plain string
	Summary       string
	Description   string
	Asset         string
	AssetType     string
	Type          string  // category, e.g. "Vulnerability", "PKI", "DNS", "Cloud", "Email Security"
	Urgency       float64 // from "urgency": either {"urgency": 9.3} or a number; 0..10
	CurrentState  string
	FirstOpenedAt string // raw RFC 3339 strings as received
	LastOpenedAt  string
	UpdatedTime   string
	IsOpen        *bool
	LastClosedAt  string
	Tags          []string // lenient: strings, or objects -> their "name"/"label"/"value"/"tag" field (or compact JSON)
	CVEs          []string // lenient the same way ("cves" may be strings or objects with "id"/"cve"/"name")
	// Extra keeps every field that is not decoded into one of the fields
	// above: groups, acknowledged_by, anything unknown, and a known optional
	// field whose value has an unexpected shape (say a numeric description).
	// Values are the JSON as received, compacted and escaped the way
	// encoding/json writes it, so they survive json.Marshal byte for byte.
	Extra map[string]json.RawMessage
}

// Urgency bounds (inclusive).
const (
	MinUrgency = 0.0
	MaxUrgency = 10.0
)

// Validate checks what every action item needs: a non-blank id that is valid
// UTF-8, a non-blank title and type, and an urgency that is a number within
// 0..10 (not NaN or infinite).
// Whether the urgency was present in the JSON at all is checked by Decode; the
// struct cannot tell a missing urgency from 0.
func (a ActionItem) Validate() error {
	problems := a.problems()
	if len(problems) == 0 {
		return nil
	}
	return &InvalidError{ID: a.ID, Problems: problems}
}

// problems lists what Validate rejects, in field order.
func (a ActionItem) problems() []string {
	var problems []string
	switch {
	case strings.TrimSpace(a.ID) == "":
		problems = append(problems, "missing id")
	case !utf8.ValidString(a.ID):
		// Encoded, its invalid bytes would become U+FFFD: another item's id.
		problems = append(problems, "id is not valid UTF-8")
	}
	if strings.TrimSpace(a.Title) == "" {
		problems = append(problems, "missing title")
	}
	if strings.TrimSpace(a.Type) == "" {
		problems = append(problems, "missing type")
	}
	if p := urgencyProblem(a.Urgency, formatUrgency(a.Urgency)); p != "" {
		problems = append(problems, p)
	}
	return problems
}

// urgencyProblem reports a numeric urgency that is not usable; text is how
// the value is shown in the message.
func urgencyProblem(u float64, text string) string {
	switch {
	case math.IsNaN(u):
		return "urgency is not a number (NaN)"
	case u < MinUrgency || u > MaxUrgency: // ±Inf included
		return "urgency " + text + " outside 0-10"
	}
	return ""
}

// formatUrgency prints an urgency the shortest way that reads it back exactly.
func formatUrgency(u float64) string {
	return strconv.FormatFloat(u, 'g', -1, 64)
}

// cutRunes returns s cut to at most n runes.
func cutRunes(s string, n int) string {
	count := 0
	for i := range s {
		if count == n {
			return s[:i] + "…"
		}
		count++
	}
	return s
}
