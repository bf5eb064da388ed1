// Package ionixapi reads the action-item lists of the IONIX API, for the
// poller that publishes new and closed items.
//
// # Endpoints
//
// [Client.Each] walks one list page by page:
//
//	GET {api_url}/api/v1/remediation/action-items/open/?limit=100&offset=0
//	GET {api_url}/api/v1/remediation/action-items/closed/?limit=100&offset=0
//
// with the headers Authorization: Bearer <ionix.token>, X-Account-Name:
// <ionix.account> and Accept: application/json. Each page is Django REST
// framework's limit/offset page, {"count":N,"next":URL|null,
// "previous":URL|null,"results":[...]}, and every element of results is
// handed to the caller as the raw JSON the API sent, byte for byte (the
// message body of SPEC §2). SPEC §2 names only the open list; the closed
// list is assumed to mirror it (same paging, same item shape, with
// "is_open": false and "last_closed_at"), which is what the emulator in
// [github.com/ionix/ionixsnow/ionixapi/ionixsim] serves.
//
// # Paging
//
// The first request asks for Config.PageSize items at offset 0. After a
// page, the client follows "next" when the page has one. Otherwise it asks
// for the offset after the items read so far, and stops when a page is empty
// or that offset reaches "count". A server that caps limit (DRF's max_limit)
// is read correctly in both modes, since offsets advance by what the server
// returned, not by what was asked for.
//
// A "next" link is followed for its path and query only: it must name the
// host of Config.BaseURL (and no other explicit port), and the request goes
// to BaseURL's scheme, host and port. The token is never sent elsewhere, and
// an http:// link written by a server behind a TLS-terminating proxy is read
// over https. A link to another host is refused with [ErrProtocol], as is a
// server that loops: a "next" already visited, or more items than "count"
// (the largest seen) plus one page. Redirects are not followed: a 3xx is
// [ErrRequest] naming where ionix.api_url redirects to.
//
// A walk reads at most Config.MaxPages pages (default: enough for
// [DefaultMaxListItems] items at Config.PageSize, 1000 pages at the default
// page size) within Config.ListTimeout (default [DefaultListTimeout], 10m);
// a list that goes on beyond either cap (a server serving endless distinct
// "next" links with a growing "count", or a slow one) ends the walk with
// [ErrLimit], naming the cap.
//
// # Failures
//
// Every failure of a request is an [*Error] that matches one sentinel with
// [errors.Is], decided by classify from the HTTP status and content type:
//
//   - transient: network errors, request timeouts (Config.Timeout), 1xx,
//     408, 409, 423, 425, 429, 5xx, and a 2xx whose body is not JSON (an
//     HTML maintenance page). A page is retried with exponential backoff
//     (500ms doubling, jittered, capped at Config.MaxBackoff) up to
//     Config.MaxAttempts attempts in all, each retry logged at warn with the
//     offset and the wait; a Retry-After (seconds or an HTTP date) on a
//     transient answer is honoured as the least wait. When attempts run
//     out, or a Retry-After asks for more than [MaxRetryAfter], the error
//     wraps [ErrUnavailable] (with Error.RetryAfter set for the caller's
//     next try).
//   - 401 and 403: [ErrUnauthorized]; the message names the fix (check
//     ionix.token and ionix.account). Not retried.
//   - 404: [ErrNotFound]; ionix.api_url is not the IONIX API. Not retried.
//   - 3xx and every other 4xx: [ErrRequest]. Not retried.
//   - a 2xx JSON body that is not a page: [ErrProtocol]. Not retried.
//
// A cancelled context ends Each at once with an error that matches
// context.Canceled (or context.DeadlineExceeded), and no sentinel. An error
// returned by the caller's function ends it too and is returned wrapped.
//
// The token never appears in an error or a log entry: what the server said
// (bodies, page titles, "next" links, Location headers, network errors) is
// redacted by the rule of [github.com/ionix/ionixsnow/remote.Redactor] before
// it is cut short, with [Redacted] in place of any run of 8 characters of the
// token (in any letter case, as is, query-, path-, JSON- or HTML-escaped) and
// of a shorter token where it stands as a whole token.
package ionixapi
