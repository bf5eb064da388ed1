package tenant

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Default is the single-tenant form: the tenant a config file with
// servicenow.instance_url describes. It keeps the names of SPEC §3, and it is never
// stored in the bucket (the config file is its settings).
const Default = "default"

// IDRule is the form of a tenant id: the IONIX account name, lower-cased.
const IDRule = "[a-z0-9][a-z0-9_-]{0,62} (the IONIX account name, lower-cased)"

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ErrInvalidID is the error of an id outside IDRule.
var ErrInvalidID = errors.New("invalid tenant id")

// Reserved are ids IDRule allows that no tenant may take: the single-tenant form's
// budget key ("window", budget.DefaultKey) and the event tokens of its subjects.
var Reserved = []string{"window", "opened", "closed"}

// ParseID returns the tenant id of an IONIX account name: lower-cased, then checked
// against IDRule. The error names the rule and quotes the input.
func ParseID(account string) (string, error) {
	id := strings.ToLower(account)
	if !idPattern.MatchString(id) {
		return "", fmt.Errorf("%w %q: must be %s", ErrInvalidID, shorten(account), IDRule)
	}
	if slices.Contains(Reserved, id) {
		return "", fmt.Errorf("%w %q: reserved (the single-tenant form's budget key and event names: %s)", ErrInvalidID, id, strings.Join(Reserved, ", "))
	}
	return id, nil
}

// shorten keeps an id quoted in a message to one readable line.
func shorten(s string) string {
	const max = 80
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}
