package servicenow

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ionix/ionixsnow/remote"
)

// Defaults of [Config].
const (
	DefaultImportTable = "u_ionix_action_item"
	DefaultTimeout     = 30 * time.Second
)

// Config is the connection to one ServiceNow instance. Configure option 1
// (Username and Password), option 2 (RefreshToken) or both.
type Config struct {
	// InstanceURL is https://<instance>.service-now.com; plain http is
	// accepted only for loopback hosts (127.0.0.0/8, ::1, localhost).
	InstanceURL string

	ClientID, ClientSecret string // the OAuth client (Application Registry)
	Username, Password     string // option 1: password grant
	RefreshToken           string // option 2: refresh_token grant

	ImportTable string        // staging table; default "u_ionix_action_item"
	Timeout     time.Duration // per request; default 30s

	// AllowInsecureHTTP accepts plain http for any host: only for an emulator on
	// another host of a private network (docker compose), never for an instance.
	AllowInsecureHTTP bool
}

// FieldError is one problem with one configuration key. It never holds the
// value of a secret.
type FieldError struct {
	Key     string // e.g. "servicenow.instance_url"
	Problem string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Problem }

// tableName is what ServiceNow accepts as a table name.
var tableName = regexp.MustCompile(`^[a-z0-9_]{1,80}$`)

// Validate reports every problem at once (joined with [errors.Join]), each
// an [*FieldError] naming its key; nil when the configuration is usable.
func (c Config) Validate() error {
	var problems []*FieldError
	add := func(key, format string, args ...any) {
		problems = append(problems, &FieldError{Key: "servicenow." + key, Problem: fmt.Sprintf(format, args...)})
	}

	if err := checkInstanceURL(c.InstanceURL, c.AllowInsecureHTTP); err != "" {
		add("instance_url", "%s", err)
	}
	if c.ClientID == "" {
		add("client_id", "is required (System OAuth > Application Registry > IONIX)")
	}
	if c.ClientSecret == "" {
		add("client_secret", "is required (System OAuth > Application Registry > IONIX)")
	}
	switch {
	case c.Username != "" && c.Password == "":
		add("password", "is required with servicenow.username (option 1)")
	case c.Username == "" && c.Password != "":
		add("username", "is required with servicenow.password (option 1)")
	case c.Username == "" && c.RefreshToken == "":
		add("username", "set servicenow.username and servicenow.password (option 1) or servicenow.refresh_token (option 2)")
	}
	// Generated values never have surrounding white space: it is a copy or
	// file-reading mistake (a trailing newline) that ServiceNow would reject.
	for key, v := range map[string]string{"client_id": c.ClientID, "client_secret": c.ClientSecret, "refresh_token": c.RefreshToken} {
		if v != strings.TrimSpace(v) {
			add(key, "has leading or trailing white space")
		}
	}
	if c.ImportTable != "" && !tableName.MatchString(c.ImportTable) {
		add("import_table", "%q is not a table name (lower-case letters, digits and _, at most 80)", c.ImportTable)
	}
	if c.Timeout < 0 {
		add("timeout", "must not be negative (got %s)", c.Timeout)
	}
	// Sort by key for a stable report (map iteration above is random).
	slices.SortStableFunc(problems, func(a, b *FieldError) int { return strings.Compare(a.Key, b.Key) })
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// checkInstanceURL returns what is wrong with the instance URL, or "". It
// never echoes user information a URL might carry.
func checkInstanceURL(raw string, insecureOK bool) string {
	if raw == "" {
		return "is required (https://<instance>.service-now.com)"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "is not an absolute URL (https://<instance>.service-now.com)"
	}
	if u.User != nil {
		return "must not contain user information; use servicenow.username and servicenow.password"
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !insecureOK && !remote.IsLoopback(u.Hostname()) {
			return fmt.Sprintf("must use https (plain http only for loopback hosts), got %s", u.Redacted())
		}
	default:
		return fmt.Sprintf("must use https, got scheme %q", u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("must be the instance's base URL without path, query or fragment, got %s", u.Redacted())
	}
	return ""
}

// withDefaults fills in the defaults.
func (c Config) withDefaults() Config {
	if c.ImportTable == "" {
		c.ImportTable = DefaultImportTable
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	c.InstanceURL = strings.TrimRight(c.InstanceURL, "/")
	return c
}
