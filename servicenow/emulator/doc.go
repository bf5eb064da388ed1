// Package emulator is an in-process emulator of the parts of a ServiceNow
// instance that ionixsnow talks to. Tests, the demo, the benchmark and
// `ionixsnow servicenow-sim` run it instead of a real instance.
//
// A [Server] is an [net/http.Handler]. It emulates:
//
//   - POST /oauth_token.do: OAuth 2 password and refresh_token grants for one
//     OAuth client and one user, tokens that expire by the server's clock
//     ([Options.Now]), and ServiceNow's answer to any credential failure:
//     HTTP 401 {"error_description":"access_denied","error":"server_error"},
//     which does not say which credential was wrong (the request log does,
//     in [Request.Note]).
//   - Bearer (or basic) authentication on every /api/now/ call: HTTP 401
//     {"error":{"message":"User Not Authenticated",...},"status":"failure"}
//     when the token is missing, unknown or expired.
//   - POST /api/now/import/{table}: the Import Set API of an inbound web
//     service whose staging table has the columns of SPEC §4 (with the
//     configured prefix), the transform map to incident (name ->
//     short_description, body -> description, category, impact, urgency,
//     opening_date -> opened_at, correlation_id, state, close_notes),
//     coalesce on correlation_id, INC numbering from INC0010001, priority
//     from impact × urgency, and silent truncation to the staging (and
//     incident) column lengths.
//   - GET /api/now/table/{table}[/{sys_id}] for incident and sys_dictionary,
//     with sysparm_query (encoded queries: =, !=, LIKE, STARTSWITH, ENDSWITH,
//     ISEMPTY, ISNOTEMPTY, ^, ^OR, ^NQ), sysparm_fields, sysparm_limit and
//     sysparm_offset. As on a real instance, a condition on a field the
//     table does not have is dropped silently, so it matches every row, and
//     "=" compares case-insensitively. DELETE /api/now/table/incident/{sys_id}
//     removes an incident (for replay tests).
//   - GET /sim/requests and GET /sim/incidents: what the emulator saw and
//     holds, as JSON, for demos and other processes. These need no token.
//
// Deliberate simplifications, each a place where a real instance is more
// elaborate: one OAuth client and one user; no roles or ACLs yet; one
// transform map; values sent to the Import Set API that are not strings are
// stringified (numbers and booleans as their JSON text, null as empty,
// objects and arrays as compact JSON), where a real instance mangles them in
// less predictable ways; staging columns the table does not have are dropped
// (they are still visible in the request log). Fault injection, rate limits
// and ACLs are to come; [Options] is the place for them.
//
// The server is safe for concurrent use.
package emulator
