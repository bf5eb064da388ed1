package mapping

import (
	"strings"
	"unicode/utf8"
)

// truncateRunes cuts s to at most max runes, on a rune boundary, ending with
// marker when it cuts; the result including the marker has at most max runes.
// If the marker alone is longer than max, the marker is cut.
func truncateRunes(s string, max int, marker string) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	keep := max - utf8.RuneCountInString(marker)
	if keep <= 0 {
		return prefixRunes(marker, max)
	}
	return prefixRunes(s, keep) + marker
}

// prefixRunes returns the first n runes of s.
func prefixRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

// validText replaces invalid UTF-8 with U+FFFD, so that every cut and every
// count is on real runes.
func validText(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// oneLine trims s and turns line breaks and tabs into single spaces, for
// single-line ServiceNow fields such as short_description.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
