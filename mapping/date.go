package mapping

import (
	"fmt"
	"strings"
	"time"

	"github.com/ionix/ionixsnow/ionix"
)

// ServiceNowTimeLayout is the layout of ServiceNow date-time values
// ("YYYY-MM-DD HH:MM:SS"); the values are sent in UTC.
const ServiceNowTimeLayout = "2006-01-02 15:04:05"

// OpeningDate converts an RFC 3339 time (with or without fractional seconds,
// any offset) to UTC in ServiceNow's layout:
// "2024-05-01T23:30:00-05:00" -> "2024-05-02 04:30:00". Fractional seconds
// are dropped. A time without an offset is rejected rather than guessed. The
// error wraps ionix.ErrInvalid.
func OpeningDate(rfc3339 string) (string, error) {
	t, err := parseRFC3339(rfc3339)
	if err != nil {
		return "", err
	}
	return t.UTC().Format(ServiceNowTimeLayout), nil
}

// parseRFC3339 parses an RFC 3339 time. Besides "T" and "Z" it accepts the
// "t", " " and "z" that RFC 3339 allows.
func parseRFC3339(s string) (time.Time, error) {
	text := strings.TrimSpace(s)
	if len(text) > 10 && (text[10] == ' ' || text[10] == 't') {
		text = text[:10] + "T" + text[11:]
	}
	if strings.HasSuffix(text, "z") {
		text = strings.TrimSuffix(text, "z") + "Z"
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is not RFC 3339 (like 2024-05-01T23:30:00Z): %w", s, ionix.ErrInvalid)
	}
	return t, nil
}
