package ionix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// MarshalJSON encodes the item in the shape the IONIX API uses
// ("title": {"label": ...}, "urgency": {"urgency": ...}), known fields first
// in a fixed order and then the Extra fields sorted by name. Empty known
// fields are left out. A field in Extra whose name is also a known field that
// is set is left out too (the typed value wins), so the output never repeats
// a key. Strings are escaped as encoding/json escapes them, so the output is
// the same whether it comes from this method or from json.Marshal.
// Decode(MarshalJSON(x)) gives back x for every x that Decode returned.
func (a ActionItem) MarshalJSON() ([]byte, error) {
	if math.IsNaN(a.Urgency) || math.IsInf(a.Urgency, 0) {
		return nil, fmt.Errorf("encode action item %q: urgency %v is not a JSON number: %w", a.ID, a.Urgency, ErrInvalid)
	}
	w := objectWriter{written: make(map[string]bool)}
	w.stringField(fieldID, a.ID)
	if a.Title != "" {
		w.key(fieldTitle)
		w.buf.WriteString(`{"label":`)
		w.string(a.Title)
		w.buf.WriteByte('}')
	}
	w.stringField(fieldSummary, a.Summary)
	w.stringField(fieldDescription, a.Description)
	w.stringField(fieldAsset, a.Asset)
	w.stringField(fieldAssetType, a.AssetType)
	w.stringField(fieldType, a.Type)
	w.key(fieldUrgency)
	w.buf.WriteString(`{"urgency":`)
	w.buf.WriteString(strconv.FormatFloat(a.Urgency, 'g', -1, 64))
	w.buf.WriteByte('}')
	w.stringField(fieldCurrentState, a.CurrentState)
	w.stringField(fieldFirstOpenedAt, a.FirstOpenedAt)
	w.stringField(fieldLastOpenedAt, a.LastOpenedAt)
	w.stringField(fieldUpdatedTime, a.UpdatedTime)
	if a.IsOpen != nil {
		w.key(fieldIsOpen)
		w.buf.WriteString(strconv.FormatBool(*a.IsOpen))
	}
	w.stringField(fieldLastClosedAt, a.LastClosedAt)
	w.stringList(fieldTags, a.Tags)
	w.stringList(fieldCVEs, a.CVEs)

	names := make([]string, 0, len(a.Extra))
	for name := range a.Extra {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if w.written[name] {
			continue
		}
		raw := bytes.TrimSpace(a.Extra[name])
		if !json.Valid(raw) {
			return nil, fmt.Errorf("encode action item %q: extra field %q is not valid JSON: %w", a.ID, name, ErrInvalid)
		}
		w.key(name)
		w.buf.Write(compactJSON(raw))
	}
	w.buf.WriteByte('}')
	return w.buf.Bytes(), nil
}

// objectWriter builds one JSON object field by field.
type objectWriter struct {
	buf     bytes.Buffer
	written map[string]bool
}

func (w *objectWriter) key(name string) {
	if len(w.written) == 0 {
		w.buf.WriteByte('{')
	} else {
		w.buf.WriteByte(',')
	}
	w.written[name] = true
	w.string(name)
	w.buf.WriteByte(':')
}

// string writes s as a JSON string the way encoding/json does (invalid
// UTF-8 becomes U+FFFD; <, >, & are escaped).
func (w *objectWriter) string(s string) {
	quoted, _ := json.Marshal(s) // a string always encodes
	w.buf.Write(quoted)
}

func (w *objectWriter) stringField(name, value string) {
	if value == "" {
		return
	}
	w.key(name)
	w.string(value)
}

func (w *objectWriter) stringList(name string, values []string) {
	if len(values) == 0 {
		return
	}
	w.key(name)
	w.buf.WriteByte('[')
	for i, v := range values {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		w.string(v)
	}
	w.buf.WriteByte(']')
}
