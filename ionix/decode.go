package ionix

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JSON field names of an action item (SPEC §2).
const (
	fieldID            = "id"
	fieldTitle         = "title"
	fieldSummary       = "summary"
	fieldDescription   = "description"
	fieldAsset         = "asset"
	fieldAssetType     = "asset_type"
	fieldType          = "type"
	fieldUrgency       = "urgency"
	fieldCurrentState  = "current_state"
	fieldFirstOpenedAt = "first_opened_at"
	fieldLastOpenedAt  = "last_opened_at"
	fieldUpdatedTime   = "updated_time"
	fieldIsOpen        = "is_open"
	fieldLastClosedAt  = "last_closed_at"
	fieldTags          = "tags"
	fieldCVEs          = "cves"
)

// Decode parses one action item (one JSON object) and validates it.
//
// On failure the error wraps ErrInvalid (it is an *InvalidError) and names
// every problem found, and the returned item holds whatever could be read
// (its ID in particular, for logs and dead letters). Decode never panics.
func Decode(data []byte) (ActionItem, error) {
	var fields map[string]json.RawMessage
	trimmed, problem := decodeObject(data, &fields)
	if problem != "" {
		return ActionItem{}, &InvalidError{Problems: []string{problem}}
	}

	var (
		item     ActionItem
		problems []string
		seen     = make(map[string]bool, len(fields))
	)
	addProblem := func(p string) { problems = append(problems, p) }

	// A key given twice would silently resolve to its last value.
	dups := duplicateKeys(trimmed, len(fields))
	for _, key := range dups {
		addProblem("duplicate key " + quoteKey(key))
	}
	seen[fieldID] = true
	id, p := decodeID(fields[fieldID])
	if p != "" {
		addProblem(p)
	}
	if !slices.Contains(dups, fieldID) {
		item.ID = id // an id given twice is neither
	}
	seen[fieldTitle] = true
	if title, p := decodeTitle(fields[fieldTitle]); p != "" {
		addProblem(p)
	} else {
		item.Title = title
	}
	seen[fieldType] = true
	if typ, p := decodeType(fields[fieldType]); p != "" {
		addProblem(p)
	} else {
		item.Type = typ
	}
	seen[fieldUrgency] = true
	if u, p := decodeUrgency(fields[fieldUrgency]); p != "" {
		addProblem(p)
	} else {
		item.Urgency = u
	}

	// Optional text fields: a value of another shape goes to Extra untouched.
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{fieldSummary, &item.Summary},
		{fieldDescription, &item.Description},
		{fieldAsset, &item.Asset},
		{fieldAssetType, &item.AssetType},
		{fieldCurrentState, &item.CurrentState},
		{fieldFirstOpenedAt, &item.FirstOpenedAt},
		{fieldLastOpenedAt, &item.LastOpenedAt},
		{fieldUpdatedTime, &item.UpdatedTime},
		{fieldLastClosedAt, &item.LastClosedAt},
	} {
		if s, ok := decodeOptionalString(fields[f.name]); ok {
			*f.dst = s
			seen[f.name] = true
		}
	}
	if b, ok := decodeOptionalBool(fields[fieldIsOpen]); ok {
		item.IsOpen = b
		seen[fieldIsOpen] = true
	}
	seen[fieldTags] = true
	item.Tags = decodeLabels(fields[fieldTags], "name", "label", "value", "tag")
	seen[fieldCVEs] = true
	item.CVEs = decodeLabels(fields[fieldCVEs], "id", "cve", "name")

	for name, raw := range fields {
		if seen[name] {
			continue
		}
		if item.Extra == nil {
			item.Extra = make(map[string]json.RawMessage)
		}
		item.Extra[name] = compactJSON(raw)
	}

	if len(problems) == 0 {
		problems = item.problems() // blank values that decoded fine
	}
	if len(problems) > 0 {
		return item, &InvalidError{ID: item.ID, Problems: problems}
	}
	return item, nil
}

// knownFieldsHint is about how many fields an IONIX action item has.
const knownFieldsHint = 24

// decodeObject unmarshals data into fields and returns the object's text, or says
// why data is not one JSON object.
func decodeObject(data []byte, fields *map[string]json.RawMessage) (obj []byte, problem string) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, "empty input, want a JSON object"
	}
	if trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return nil, "not valid JSON"
		}
		return nil, "not a JSON object (got " + jsonKind(trimmed) + ")"
	}
	// Unmarshal validates the whole input before it decodes anything: no
	// separate json.Valid pass over it. The map is sized for an IONIX item's
	// fields, so that it does not grow while it is filled.
	*fields = make(map[string]json.RawMessage, knownFieldsHint)
	if err := json.Unmarshal(trimmed, fields); err != nil {
		if _, syntax := errors.AsType[*json.SyntaxError](err); syntax {
			return nil, "not valid JSON"
		}
		return nil, "not a JSON object: " + err.Error()
	}
	return trimmed, ""
}

// duplicateKeys lists the keys that occur more than once in obj, a valid JSON
// object that decoded into distinct keys; keys are compared as decoded, so "id"
// and "\u0069d" are the same key. An object without a repeated key, the common
// case, costs one pass that counts its members.
func duplicateKeys(obj []byte, distinct int) []string {
	if memberCount(obj) == distinct {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		return nil
	}
	count := make(map[string]int, distinct)
	var dups []string
	for dec.More() {
		tok, err := dec.Token()
		key, isKey := tok.(string)
		if err != nil || !isKey {
			break
		}
		if count[key]++; count[key] == 2 {
			dups = append(dups, key)
		}
		var value json.RawMessage
		if dec.Decode(&value) != nil {
			break
		}
	}
	return dups
}

// memberCount counts the members of obj, a valid JSON object: the colons directly
// inside it, outside strings.
func memberCount(obj []byte) int {
	n, depth := 0, 0
	for i := 0; i < len(obj); i++ {
		switch obj[i] {
		case '"':
			i = stringEnd(obj, i)
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ':':
			if depth == 1 {
				n++
			}
		}
	}
	return n
}

// stringEnd returns the index of the quote that closes the JSON string opening at
// data[open] (len(data) when there is none).
func stringEnd(data []byte, open int) int {
	for i := open + 1; i < len(data); i++ {
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			break
		}
		i += j
		backslashes := 0
		for k := i - 1; k > open && data[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return i
		}
	}
	return len(data)
}

// quoteKey quotes a JSON key for a problem message, cut to a readable length.
func quoteKey(key string) string {
	return strconv.Quote(cutRunes(key, maxIDInMessage))
}

// exactText reports whether body, the text between the quotes of a JSON string
// from a validated document, decodes to exactly what it spells: valid UTF-8, and
// no \u escape of half a surrogate pair. encoding/json replaces either with
// U+FFFD, so two strings that differ only there would decode to the same text.
func exactText(body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	for i := bytes.IndexByte(body, '\\'); i >= 0 && i+1 < len(body); {
		if body[i+1] != 'u' {
			i += 2 // a one-character escape
		} else {
			r := hex4(body[i+2 : i+6])
			switch {
			case r >= 0xD800 && r < 0xDC00: // first half: the second must follow
				if i+12 > len(body) || body[i+6] != '\\' || body[i+7] != 'u' {
					return false
				}
				if low := hex4(body[i+8 : i+12]); low < 0xDC00 || low > 0xDFFF {
					return false
				}
				i += 12
			case r >= 0xDC00 && r <= 0xDFFF: // a second half alone
				return false
			default:
				i += 6
			}
		}
		next := bytes.IndexByte(body[i:], '\\')
		if next < 0 {
			break
		}
		i += next
	}
	return true
}

// hex4 reads four hexadecimal digits (validated JSON: they are).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		default:
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r
}

// unquote returns the text of raw, a JSON string taken from a document that was
// validated as a whole (every raw value Decode looks at is). The common string —
// no escape, valid UTF-8 — is its bytes between the quotes; any other goes through
// json.Unmarshal, which decodes the escapes and replaces invalid UTF-8 as before.
// ok is false when raw is not a string.
func unquote(raw json.RawMessage) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	if body := raw[1 : len(raw)-1]; bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return string(body), true
	}
	return s, json.Unmarshal(raw, &s) == nil
}

// jsonKind names the kind of a valid JSON value for messages.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// decodeID reads "id": a string, or a JSON number kept as its literal text.
func decodeID(raw json.RawMessage) (string, string) {
	if raw == nil || isNull(raw) {
		return "", "missing id"
	}
	switch raw[0] {
	case '"':
		s, ok := unquote(raw)
		if !ok {
			return "", "id is not a string"
		}
		if !exactText(raw[1 : len(raw)-1]) {
			// Kept (with U+FFFD) to name the item in reports, never accepted.
			return s, "id is not valid UTF-8 (an invalid byte or an unpaired \\u surrogate escape); ids must be exact text"
		}
		if strings.TrimSpace(s) == "" {
			return "", "empty id"
		}
		return s, ""
	case '{', '[', 't', 'f':
		return "", "id is not a string (got " + jsonKind(raw) + ")"
	}
	return string(raw), "" // a number: its literal text is the id
}

// decodeTitle reads "title": {"label": "..."} or a plain string.
func decodeTitle(raw json.RawMessage) (string, string) {
	if raw == nil || isNull(raw) {
		return "", "missing title"
	}
	var s string
	var ok bool
	switch raw[0] {
	case '"':
		if s, ok = unquote(raw); !ok {
			return "", "title is not a string"
		}
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return "", "title is not an object"
		}
		if dups := duplicateKeys(raw, len(obj)); len(dups) > 0 {
			return "", "duplicate key " + quoteKey(dups[0]) + " in title"
		}
		label, ok := obj["label"]
		if !ok || isNull(label) {
			return "", "title has no label"
		}
		if s, ok = unquote(label); !ok {
			return "", "title label is not a string (got " + jsonKind(label) + ")"
		}
	default:
		return "", "title is neither a string nor an object with a label (got " + jsonKind(raw) + ")"
	}
	if strings.TrimSpace(s) == "" {
		return "", "empty title"
	}
	return s, ""
}

// decodeType reads "type", the category.
func decodeType(raw json.RawMessage) (string, string) {
	if raw == nil || isNull(raw) {
		return "", "missing type"
	}
	s, ok := unquote(raw)
	if !ok {
		return "", "type is not a string (got " + jsonKind(raw) + ")"
	}
	if strings.TrimSpace(s) == "" {
		return "", "empty type"
	}
	return s, ""
}

// decodeUrgency reads "urgency": {"urgency": 9.3} or a plain JSON number.
// A numeric string such as "9.3" is rejected: it is not a number.
func decodeUrgency(raw json.RawMessage) (float64, string) {
	if raw == nil {
		return 0, "missing urgency"
	}
	if raw[0] == '{' {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return 0, "urgency is not an object"
		}
		if dups := duplicateKeys(raw, len(obj)); len(dups) > 0 {
			return 0, "duplicate key " + quoteKey(dups[0]) + " in urgency"
		}
		inner, ok := obj["urgency"]
		if !ok {
			return 0, `urgency object has no "urgency" field`
		}
		raw = inner
	}
	if isNull(raw) {
		return 0, "urgency is null"
	}
	switch raw[0] {
	case '"', '{', '[', 't', 'f':
		return 0, "urgency is not a number (got " + jsonKind(raw) + ")"
	}
	text := string(raw)
	u, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, "urgency is not a number"
	} // on ErrRange u is ±Inf (reported below as out of range) or a tiny number near 0

	if p := urgencyProblem(u, text); p != "" {
		return 0, p
	}
	return u + 0, "" // + 0 turns -0 into 0
}

// decodeOptionalString reads an optional text field; ok is false when the
// value is of another shape and must be kept in Extra.
func decodeOptionalString(raw json.RawMessage) (string, bool) {
	if raw == nil || isNull(raw) {
		return "", true
	}
	return unquote(raw)
}

// decodeOptionalBool reads an optional boolean; ok is false when the value is
// of another shape and must be kept in Extra.
func decodeOptionalBool(raw json.RawMessage) (*bool, bool) {
	if raw == nil || isNull(raw) {
		return nil, true
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return nil, false
	}
	return &b, true
}

// decodeLabels reads a lenient list of labels (tags, CVEs): an array or a
// single value; each element a string (kept as is), an object (its first
// non-blank string field among keys, else its compact JSON), or any other
// value (its compact JSON text). Nulls and blank strings are skipped.
func decodeLabels(raw json.RawMessage, keys ...string) []string {
	if raw == nil || isNull(raw) {
		return nil
	}
	var elems []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		elems = []json.RawMessage{raw}
	}
	var labels []string
	for _, elem := range elems {
		if label := labelOf(elem, keys); strings.TrimSpace(label) != "" {
			labels = append(labels, label)
		}
	}
	return labels
}

func labelOf(raw json.RawMessage, keys []string) string {
	if len(raw) == 0 || isNull(raw) {
		return ""
	}
	switch raw[0] {
	case '"':
		if s, ok := unquote(raw); ok {
			return s
		}
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) == nil {
			for _, key := range keys {
				if s, ok := unquote(obj[key]); ok && strings.TrimSpace(s) != "" {
					return s
				}
			}
		}
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		compact.Reset()
		compact.Write(raw)
	}
	return strings.ToValidUTF8(compact.String(), "\uFFFD")
}

// compactJSON returns a valid JSON value in the canonical form
// encoding/json writes it: compact, with <, >, &, U+2028 and U+2029 inside
// strings escaped. Extra keeps values in this form so that they come back
// byte for byte after json.Marshal, which escapes the same way.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		return append(json.RawMessage(nil), raw...)
	}
	var escaped bytes.Buffer
	json.HTMLEscape(&escaped, compact.Bytes())
	return escaped.Bytes()
}
