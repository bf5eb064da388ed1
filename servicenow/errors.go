package servicenow

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ionix/ionixsnow/remote"
)

// Class is the outcome class of a request to ServiceNow.
type Class int

// Outcome classes; see the package documentation.
const (
	ClassSuccess       Class = iota // inserted or updated
	ClassTransient                  // retry with backoff, keep the message
	ClassConfiguration              // pause sending, report the fix, probe with backoff
	ClassPermanent                  // this item is rejected: dead-letter it
)

func (c Class) String() string {
	switch c {
	case ClassSuccess:
		return "success"
	case ClassTransient:
		return "transient"
	case ClassConfiguration:
		return "configuration"
	case ClassPermanent:
		return "permanent"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Sentinel errors, one per failure class. Every error this package returns
// for a failed request is an [*Error] that matches exactly one of them with
// [errors.Is].
var (
	// ErrTransient: network errors, timeouts, 5xx, 429, an HTML page
	// (hibernating instance). Retry later.
	ErrTransient = errors.New("servicenow: transient failure")
	// ErrConfiguration: 401 after re-authentication, 403, 404 on the table,
	// OAuth rejecting the credentials. Nothing will succeed until the setup
	// is fixed; see Error.Fix.
	ErrConfiguration = errors.New("servicenow: configuration problem")
	// ErrRejected: 400, or an import result status error, ignored or
	// skipped. Permanent for this item.
	ErrRejected = errors.New("servicenow: item rejected")
)

// sentinel returns the sentinel error of c (nil for ClassSuccess).
func (c Class) sentinel() error {
	switch c {
	case ClassTransient:
		return ErrTransient
	case ClassConfiguration:
		return ErrConfiguration
	case ClassPermanent:
		return ErrRejected
	}
	return nil
}

// Error is a failed request to ServiceNow. It never holds a secret.
type Error struct {
	Class      Class
	StatusCode int           // HTTP status; 0 when there was no response
	Message    string        // what ServiceNow (or the network) said
	RetryAfter time.Duration // from Retry-After (429, 503); 0 when absent
	Fix        string        // the setup step that fixes a configuration problem

	Op           string // "authenticate", "import" or "find incidents"
	ResultStatus string // import result status (error, ignored, skipped, ...), if any
	Err          error  // the underlying network or context error, if any
}

// Error returns "servicenow: <op>: <class>: HTTP <code>: <message> (fix: <fix>)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("servicenow: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Class.String())
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.ResultStatus != "" {
		fmt.Fprintf(&b, ": status %s", e.ResultStatus)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Fix != "" {
		b.WriteString(" (fix: ")
		b.WriteString(e.Fix)
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is the sentinel error of e's class.
func (e *Error) Is(target error) bool {
	s := e.Class.sentinel()
	return s != nil && target == s
}

// Unwrap returns the underlying network or context error, so that
// errors.Is(err, context.Canceled) works.
func (e *Error) Unwrap() error { return e.Err }

// ErrorClass returns the class of err: ClassSuccess for nil, the class of an
// [*Error], and ClassTransient for any other error.
func ErrorClass(err error) Class {
	if err == nil {
		return ClassSuccess
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassTransient
}

// Classify decides the outcome class of a ServiceNow answer, from its HTTP
// status, its Content-Type and, for an import, the status of its result
// ("" when there is none, as for Table API reads). It is the one place where
// this is decided:
//
//   - 2xx: an HTML page is transient (a hibernating instance answers 200
//     with HTML); result status "", inserted or updated is success; error,
//     ignored or skipped is permanent; any other is a configuration problem.
//   - 1xx, 408, 409, 423, 425, 429, 5xx (and codes above 599): transient.
//   - 400, 413, 414, 422: permanent for the item (its content is the cause).
//   - 3xx (not followed) and every other 4xx (401, 403, 404, 405, ...):
//     configuration; they would fail every item alike, so sending pauses
//     rather than dead-lettering everything.
//
// A 401 is a configuration problem only once the client has re-authenticated
// and retried; the client does that before classifying.
func Classify(statusCode int, contentType string, resultStatus string) Class {
	switch {
	case statusCode >= 200 && statusCode <= 299:
		if remote.IsHTML(contentType) {
			return ClassTransient
		}
		switch strings.ToLower(strings.TrimSpace(resultStatus)) {
		case "", "inserted", "updated":
			return ClassSuccess
		case "error", "ignored", "skipped":
			return ClassPermanent
		}
		return ClassConfiguration
	case statusCode < 200, statusCode >= 500:
		return ClassTransient
	case statusCode < 400:
		return ClassConfiguration
	}
	switch statusCode {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusLocked,
		http.StatusTooEarly, http.StatusTooManyRequests:
		return ClassTransient
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge,
		http.StatusRequestURITooLong, http.StatusUnprocessableEntity:
		return ClassPermanent
	}
	return ClassConfiguration
}

// Fixes: the setup steps (integration guide, README) that fix configuration
// problems.
const (
	fixClientCredentials = "check servicenow.client_id and servicenow.client_secret against " +
		"System OAuth > Application Registry > IONIX (press the lock on Client Secret to see it)"
	fixPassword = "check servicenow.username and servicenow.password (System Security > Users: " +
		"the user must be active and not locked out), and the OAuth client"
	fixRefreshToken = "obtain a new refresh token (POST /oauth_token.do with grant_type=password, " +
		"see the README; refresh tokens expire after 100 days) and set servicenow.refresh_token, " +
		"or check servicenow.client_id and servicenow.client_secret"
	fixUnauthorized = "ServiceNow issues tokens but refuses them on the API: check that the user is active " +
		"and not locked out, and that the OAuth client's token lifetimes are not zero"
	fixImportForbidden = "give the user the roles ionix_integration and import_transformer (integration guide: " +
		"Creating a Group of Users for the Integration, Adding a User to a Group) and create the create and write " +
		"ACLs on the ionix_action_item table for the role ionix_integration (integration guide: Creating a New ACL)"
	fixImportRoles = "give the user the roles import_transformer and ionix_integration through the group ionix_group " +
		"(integration guide: Creating a Group of Users for the Integration, then Adding a User to a Group)"
	fixImportACL = "create the create and write ACLs on the ionix_action_item table for the role ionix_integration, " +
		"and give the user that role (integration guide: Creating a New ACL)"
	fixReadForbidden = "give the user read access to the incident table (for example the itil role); " +
		"only doctor and replay --missing-only need it"
	fixImportTable = "create the inbound web service ionix_action_item (System Web Services > Inbound > " +
		"Create New) or set servicenow.import_table to its staging table"
	fixNoTransformMap = "create the transform map of the ionix_action_item web service to incident " +
		"(integration guide: Creating a Transform Map)"
	fixUnknownStatus = "check the transform map of the ionix_action_item web service (scripts may set an " +
		"unexpected status)"
	fixRedirect = "set servicenow.instance_url to the instance's own URL (https://<instance>.service-now.com); " +
		"the URL configured redirects"
	fixURL = "check servicenow.instance_url: it must be the instance's base URL, https://<instance>.service-now.com"
)
