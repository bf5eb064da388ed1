package mapping

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ionix/ionixsnow/ionix"
)

// Reasons Filter.Allows gives for an item it holds back (also the label of
// the items_filtered_total metric).
const (
	ReasonCategory = "category"
	ReasonUrgency  = "urgency"
)

// Filter decides which items are sent.
type Filter struct {
	Categories       []string // empty = all; compare case-insensitively
	UrgencyThreshold float64  // 1..10; an item passes when urgency >= threshold
}

// Allows reports whether the item should be sent; reason is "category" or
// "urgency" when not (category is checked first).
//
// A category matches the item's type when they are equal ignoring case, or
// when they give the same subject token (ionix.CategoryToken) — the same
// rule the server applies through FilterSubjects, so an item the server
// delivers is never held back here for its category. An item passes the
// threshold when its urgency is >= UrgencyThreshold (equal passes); a NaN
// urgency never passes.
func (f Filter) Allows(a ionix.ActionItem) (ok bool, reason string) {
	if !f.allowsCategory(a.Type) {
		return false, ReasonCategory
	}
	if math.IsNaN(a.Urgency) || a.Urgency < f.UrgencyThreshold {
		return false, ReasonUrgency
	}
	return true, ""
}

func (f Filter) allowsCategory(typ string) bool {
	if len(f.Categories) == 0 {
		return true
	}
	token := ionix.CategoryToken(typ)
	for _, c := range f.Categories {
		if strings.EqualFold(c, typ) || ionix.CategoryToken(c) == token {
			return true
		}
	}
	return false
}

// FilterSubjects returns the JetStream consumer FilterSubjects for the
// category filter: no categories -> []string{prefix + ".*.*"} (exactly <event>.<category>
// below the prefix: the stream also holds tenants' items, <prefix>.<tenant>.<event>.<category>,
// SPEC §9); otherwise
// prefix + ".*." + ionix.CategoryToken(c) for each category, deduplicated by
// token in the order given. An empty prefix means ionix.DefaultSubjectPrefix.
func (f Filter) FilterSubjects(prefix string) []string {
	prefix = ionix.SubjectPrefix(prefix)
	if len(f.Categories) == 0 {
		return []string{prefix + ".*.*"}
	}
	seen := make(map[string]bool, len(f.Categories))
	var subjects []string
	for _, c := range f.Categories {
		token := ionix.CategoryToken(c)
		if seen[token] {
			continue
		}
		seen[token] = true
		subjects = append(subjects, prefix+".*."+token)
	}
	return subjects
}

// Validate reports every problem with the filter at once: a blank category,
// and a threshold that is not a number within 1..10.
func (f Filter) Validate() error {
	var problems []error
	for i, c := range f.Categories {
		if strings.TrimSpace(c) == "" {
			problems = append(problems, fmt.Errorf("category %d is empty", i+1))
		}
	}
	if math.IsNaN(f.UrgencyThreshold) || f.UrgencyThreshold < 1 || f.UrgencyThreshold > 10 {
		problems = append(problems, errors.New("urgency threshold "+
			strconv.FormatFloat(f.UrgencyThreshold, 'g', -1, 64)+" outside 1-10"))
	}
	return errors.Join(problems...)
}
