package ionixapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ionix/ionixsnow/remote"
)

// Sentinel errors. Every failed request ends in an [*Error] that matches
// exactly one of them with [errors.Is].
var (
	// ErrUnauthorized: HTTP 401 or 403. The token is wrong, expired or
	// revoked, or the account is not one the token may read; fix
	// ionix.token or ionix.account.
	ErrUnauthorized = errors.New("ionix api: credentials refused")
	// ErrNotFound: HTTP 404. ionix.api_url is not the IONIX API.
	ErrNotFound = errors.New("ionix api: not found")
	// ErrRequest: a redirect or a 4xx other than 401, 403 and 404 (and
	// the transient 408, 409, 423, 425, 429). Retrying the same request
	// will not help.
	ErrRequest = errors.New("ionix api: request refused")
	// ErrUnavailable: the API kept failing transiently (network errors,
	// timeouts, 5xx, 429, an HTML page) for every attempt, or asked to
	// retry after more than MaxRetryAfter. Try again later.
	ErrUnavailable = errors.New("ionix api: unavailable")
	// ErrProtocol: the API answered something the client cannot follow: a
	// JSON body that is not a page, a "next" link to another host, a
	// "next" already visited, or more items than it said it has.
	ErrProtocol = errors.New("ionix api: unexpected answer")
	// ErrLimit: a walk of a list reached Config.MaxPages pages with more
	// to come, or took longer than Config.ListTimeout: a server that serves
	// endless distinct "next" links (or answers slowly), or a list larger
	// than the caps allow. The message names the cap.
	ErrLimit = errors.New("ionix api: list too long")
)

// Fixes named in error messages.
const (
	fixUnauthorized = "check ionix.token (an IONIX API token that is valid and not revoked) and " +
		"ionix.account (the IONIX account name the token belongs to)"
	fixForbidden = "check ionix.account (the IONIX account name, sent as X-Account-Name, must be one the token " +
		"may read) and ionix.token"
	fixNotFound = "check ionix.api_url: it must be the IONIX API's base URL, such as " + DefaultBaseURL +
		" (the client adds /api/v1/remediation/action-items/...)"
	fixRedirect = "set ionix.api_url to the URL it redirects to"
)

// Error is a failed page request. It never holds the token.
type Error struct {
	Kind       error         // ErrUnauthorized, ErrNotFound, ErrRequest, ErrUnavailable, ErrProtocol or ErrLimit
	List       List          // the list being read
	Offset     int           // position of the page in the list (items before it)
	StatusCode int           // HTTP status of the last answer; 0 when there was none
	Message    string        // what the API (or the network) said
	RetryAfter time.Duration // the last Retry-After; 0 when absent
	Attempts   int           // requests made for this page
	Fix        string        // the configuration change that fixes it, if any
	Err        error         // the underlying network or context error, if any
}

// Error returns "ionix api: <kind>: <list> list at offset <n>: HTTP <code>:
// <message> (<n> attempts) (retry after <d>) (fix: <fix>)".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("ionix api: error")
	}
	fmt.Fprintf(&b, ": %s list at offset %d", e.List, e.Offset)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
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

// Unwrap returns the sentinel and the underlying error, so that both
// errors.Is(err, ErrUnavailable) and errors.Is(err, context.DeadlineExceeded)
// work.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// class is the outcome class of an answer.
type class int

const (
	classOK           class = iota // a page, if the body is one
	classTransient                 // retry with backoff
	classUnauthorized              // 401, 403
	classNotFound                  // 404
	classRequest                   // 3xx, other 4xx
)

func (c class) String() string {
	switch c {
	case classOK:
		return "ok"
	case classTransient:
		return "transient"
	case classUnauthorized:
		return "unauthorized"
	case classNotFound:
		return "not found"
	case classRequest:
		return "request"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// kind returns the sentinel of a failure class (nil for classOK).
func (c class) kind() error {
	switch c {
	case classTransient:
		return ErrUnavailable
	case classUnauthorized:
		return ErrUnauthorized
	case classNotFound:
		return ErrNotFound
	case classRequest:
		return ErrRequest
	}
	return nil
}

// classify decides the class of an answer from its status and Content-Type.
// It is the one place where this is decided:
//
//   - 2xx: an HTML page is transient (a maintenance page); anything else is
//     read as a page (a body that is not JSON is transient, one that is
//     JSON but not a page is a protocol error: see decodePage);
//   - 1xx, 408, 409, 423, 425, 429, 5xx and codes outside 100..599:
//     transient;
//   - 401, 403: unauthorized; 404: not found;
//   - 3xx (redirects are not followed) and every other 4xx: request.
func classify(status int, contentType string) class {
	switch {
	case status >= 200 && status <= 299:
		if remote.IsHTML(contentType) {
			return classTransient
		}
		return classOK
	case status < 200, status >= 500:
		return classTransient
	case status < 400:
		return classRequest
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return classUnauthorized
	case http.StatusNotFound:
		return classNotFound
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusLocked,
		http.StatusTooEarly, http.StatusTooManyRequests:
		return classTransient
	}
	return classRequest
}
