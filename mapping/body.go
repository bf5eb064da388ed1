package mapping

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/ionix"
)

// MaxBodyLen is the most runes a body has, the truncation marker included
// (the body column is set to 4,000 characters in the integration guide).
const MaxBodyLen = 4000

// TruncationMarker ends a body that was cut to MaxBodyLen.
const TruncationMarker = "\n[... truncated by ionixsnow]"

// Body is the readable text of an item for the incident description: the
// summary and the description, then one line each for the asset (with its
// type), category, IONIX urgency, first opened time, CVEs, tags and the
// action item id; empty parts are left out.
//
// A body longer than MaxBodyLen runes is cut on a rune boundary and marked
// with TruncationMarker. The summary and description are cut first, so the
// facts below them (the id in particular) stay whole; only when those alone
// are too long is the end of the text cut. Invalid UTF-8 becomes U+FFFD.
func Body(a ionix.ActionItem) string {
	prose := bodyProse(a)
	facts := bodyFacts(a)
	const gap = "\n\n"

	full := facts
	if prose != "" {
		full = prose + gap + facts
	}
	if utf8.RuneCountInString(full) <= MaxBodyLen {
		return full
	}
	room := MaxBodyLen - utf8.RuneCountInString(facts) - utf8.RuneCountInString(gap) - utf8.RuneCountInString(TruncationMarker)
	if prose != "" && room > 0 {
		return prefixRunes(prose, room) + TruncationMarker + gap + facts
	}
	return truncateRunes(full, MaxBodyLen, TruncationMarker)
}

// bodyProse is the summary and the description (once, if they are equal).
func bodyProse(a ionix.ActionItem) string {
	summary := strings.TrimSpace(validText(a.Summary))
	description := strings.TrimSpace(validText(a.Description))
	switch {
	case summary == "" || summary == description:
		return description
	case description == "":
		return summary
	}
	return summary + "\n\n" + description
}

// bodyFacts is one line per known fact about the item.
func bodyFacts(a ionix.ActionItem) string {
	var lines []string
	line := func(label, value string) {
		if value = strings.TrimSpace(validText(value)); value != "" {
			lines = append(lines, label+": "+value)
		}
	}

	asset := oneLine(a.Asset)
	if assetType := oneLine(a.AssetType); assetType != "" {
		if asset == "" {
			asset = "(unnamed)"
		}
		asset += " (" + assetType + ")"
	}
	line("Asset", asset)
	line("Category", oneLine(a.Type))
	urgency := Urgency(a.Urgency)
	line("IONIX urgency", strconv.FormatFloat(a.Urgency, 'f', -1, 64)+
		" of 10 (ServiceNow urgency "+urgency+" - "+levelName(urgency)+")")
	line("First opened", firstOpenedText(a.FirstOpenedAt))
	line("CVEs", joinLabels(a.CVEs))
	line("Tags", joinLabels(a.Tags))
	line("IONIX action item", a.ID)
	return strings.Join(lines, "\n")
}

// firstOpenedText shows first_opened_at in UTC next to the raw value, or says
// that it could not be read (and the opening date was left empty).
func firstOpenedText(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	utc, err := OpeningDate(raw)
	if err != nil {
		return raw + " (not an RFC 3339 time; opening date left empty)"
	}
	return utc + " UTC (" + raw + ")"
}

// joinLabels lists non-blank labels, comma separated, each on one line.
func joinLabels(labels []string) string {
	var kept []string
	for _, l := range labels {
		if l = oneLine(validText(l)); l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, ", ")
}
