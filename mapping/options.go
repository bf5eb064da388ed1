package mapping

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// DefaultFieldPrefix is the prefix ServiceNow gives to the columns of a table
// created by an inbound web service (u_name, u_body, ...).
const DefaultFieldPrefix = "u_"

// Options configures the mapping.
type Options struct {
	FieldPrefix       string            // "u_" by default (DefaultOptions); "" allowed
	CategoryOverrides map[string]string // IONIX type (case-insensitive) -> ServiceNow category
	ImpactOverrides   map[string]string // IONIX type (case-insensitive) -> "1"|"2"|"3"
}

// DefaultOptions returns the mapping of the IONIX integration guide with the
// "u_" field prefix and no overrides.
func DefaultOptions() Options {
	return Options{FieldPrefix: DefaultFieldPrefix}
}

// Field returns the staging field name for a record field such as FieldName.
func (o Options) Field(name string) string { return o.FieldPrefix + name }

// Validate reports every problem with the options at once: a field prefix
// that is not a valid column name start, blank override keys, blank category
// overrides, and impact overrides other than 1, 2, 3 (or high, medium, low).
// A mapping with invalid overrides still works (a bad impact override is
// ignored), so call Validate when loading configuration.
func (o Options) Validate() error {
	var problems []error
	for _, r := range o.FieldPrefix {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			problems = append(problems, fmt.Errorf("field prefix %q: only a-z, 0-9 and _ are allowed in ServiceNow column names", o.FieldPrefix))
			break
		}
	}
	for _, typ := range sortedKeys(o.CategoryOverrides) {
		if strings.TrimSpace(typ) == "" {
			problems = append(problems, errors.New("category override for an empty type"))
		}
		if strings.TrimSpace(o.CategoryOverrides[typ]) == "" {
			problems = append(problems, fmt.Errorf("category override for %q is empty", typ))
		}
	}
	for _, typ := range sortedKeys(o.ImpactOverrides) {
		if strings.TrimSpace(typ) == "" {
			problems = append(problems, errors.New("impact override for an empty type"))
		}
		if _, ok := impactLevel(o.ImpactOverrides[typ]); !ok {
			problems = append(problems, fmt.Errorf("impact override for %q is %q, want 1 (high), 2 (medium) or 3 (low)", typ, o.ImpactOverrides[typ]))
		}
	}
	return errors.Join(problems...)
}

// lookupFold finds the value for typ in m, comparing keys case-insensitively.
// An exact key wins; among keys equal but for case, the smallest in byte order
// wins, so the result never depends on map order.
func lookupFold(m map[string]string, typ string) (string, bool) {
	if v, ok := m[typ]; ok {
		return v, true
	}
	for _, key := range sortedKeys(m) {
		if strings.EqualFold(key, typ) {
			return m[key], true
		}
	}
	return "", false
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
