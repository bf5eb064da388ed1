// Package ionixsim is an in-process emulator of the IONIX API's action-item
// lists, for tests and demos of the poller and of the ionixapi client.
//
// A [Server] is an [net/http.Handler] that serves
//
//	GET /api/v1/remediation/action-items/open/
//	GET /api/v1/remediation/action-items/closed/
//
// the way a Django REST framework API with LimitOffsetPagination does:
//
//   - authentication first: HTTP 401 {"detail": "Authentication credentials
//     were not provided."} without a Bearer token, {"detail": "Invalid
//     token."} with another one (both with WWW-Authenticate: Bearer
//     realm="api"), then 403 {"detail": "You do not have permission to
//     perform this action."} when X-Account-Name is missing or not the
//     account ([Options.Token], [Options.Account]);
//   - content negotiation: 406 when Accept names neither JSON nor */*;
//   - paging: "limit" (a positive integer; otherwise the default, 100) capped
//     at [Options.MaxPageSize], "offset" (a non-negative integer; otherwise
//     0), and {"count","next","previous","results"}, where next and previous
//     are absolute URLs built from the request (its Host, https when it came
//     over TLS; [Options.LinkBase] overrides them) with the query parameters
//     sorted, next null on the last page and previous without offset for the
//     first page, as DRF writes them. [NextNone] leaves both null, so that
//     clients must page by offset;
//   - a path without its trailing slash: 301 to the path with it (Django's
//     APPEND_SLASH); any other path: Django's HTML 404 page; a method other
//     than GET, HEAD or OPTIONS: 405.
//
// The lists hold items as raw JSON, served byte for byte as given ([Server.SetOpen],
// [Server.Upsert], [Server.Close], [Server.Reopen]); an item's identity is
// its "id". Closing an item moves it to the closed list and sets "is_open":
// false and "last_closed_at". [Item] and [Sample] make realistic items that
// ionix.Decode accepts.
//
// Faults, for the next list requests in the order they were asked for
// (whatever their credentials): an HTTP status ([Server.FailNext]; 429 with
// Retry-After, [Options.RetryAfter]), an HTML maintenance page with status
// 200 ([Server.ServeHTMLNext]) and a connection closed without an answer
// ([Server.DropNext]). [Server.SetLatency] delays every request. Every
// request is recorded with its time, path, query and status
// ([Server.Requests]).
//
// The server is safe for concurrent use.
package ionixsim
