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
//     coalesce on correlation_id (or, to emulate a careless setup, none:
//     [Options.NoCoalesce], [Options.UnmappedCorrelationID]), INC
//     numbering from INC0010001, priority from impact × urgency, and
//     silent truncation to the staging (and incident) column lengths.
//   - GET /api/now/table/{table}[/{sys_id}] for incident and sys_dictionary,
//     with sysparm_query (encoded queries: =, !=, LIKE, STARTSWITH, ENDSWITH,
//     ISEMPTY, ISNOTEMPTY, ^, ^OR, ^NQ), sysparm_fields, sysparm_limit and
//     sysparm_offset. As on a real instance, a condition on a field the
//     table does not have is dropped silently, so it matches every row, and
//     "=" compares case-insensitively. DELETE /api/now/table/incident/{sys_id}
//     removes an incident (for replay tests).
//   - GET /api/now/import/{table}/{sys_id}: reading one staging row. The
//     emulator keeps no staging rows, so a known table answers 404 "No
//     Record found" (the answer the client's probe expects) and an unknown
//     one 404 "Invalid table".
//   - Roles and ACLs ([Options.Roles], [Options.MissingACLs]): the Import
//     Set API's REST endpoint ACL wants import_transformer (else 403 "User
//     Not Authorized" / "Failed API level ACL Validation"); the staging
//     table's create and write ACLs want ionix_integration (else 403
//     "Operation Failed" / "ACL Exception Insert (Update) Failed due to
//     security constraints"), nothing written; reading incident wants itil
//     or the optional read ACL, sys_dictionary personalize_dictionary or its
//     read ACL (else 403 "Insufficient rights to query records" for a list,
//     404 for one record); admin passes everything.
//   - A rate limit rule ([RateLimit]): X-RateLimit-Limit, -Reset and -Rule on
//     every API request it covers, 429 with Retry-After over the limit.
//   - Faults: hibernation (every request answers 200 with
//     [HibernatingPage]), latency with jitter, an error rate on imports
//     (500 or 503, before anything is written, deterministic for a seed),
//     outages (503, or connections reset through http.Hijacker) for a time
//     or until switched off, and imports whose answer is dropped after the
//     commit (the incident is written, the connection closed unanswered).
//   - GET /sim/requests and GET /sim/incidents: what the emulator saw and
//     holds, as JSON, for demos and other processes. Every request is
//     recorded with its arrival time (server clock), status (0 when the
//     connection was closed unanswered), note and the fault applied.
//   - GET /sim/config: the switches ([Config]) as JSON; PUT (or PATCH)
//     /sim/config changes the fields it names; POST /sim/reset clears the
//     faults ([Server.ResetFaults]). These need no token either.
//
// # Switches
//
// Every switch is a field of [Options] at construction, of [Config] at run
// time ([Server.SetConfig], /sim/config) and a flag of `ionixsnow
// servicenow-sim` (`-h` lists them with their JSON names):
//
//	access_token_ttl, refresh_token_ttl  token lifetimes ("30m", "2400h")
//	refresh_omits_refresh_token          refresh grants answer no refresh_token
//	ignore_unchanged                     unchanged coalesced rows answer "ignored"
//	no_coalesce                          Coalesce not ticked on correlation_id: every row inserts
//	unmapped_correlation_id              correlation_id not mapped: incidents get none, every row inserts
//	name_body_max_length                 staging name and body length (4000; 40 as created)
//	staging_as_created                   every staging column 40, correlation_id included
//	field_max_length                     per-column override, {"name": 80}
//	roles                                the user's roles (ionix_integration, import_transformer)
//	missing_acls                         create, write, incident_read, dictionary_read
//	rate_limit                           {"requests": N, "window": "1h"}
//	hibernating                          the hibernation page for every request
//	latency, latency_jitter              added to every request
//	error_rate, error_status, seed       injected import errors (500 by default)
//	outage                               {"mode": "503"|"reset", "for": "5m"} or "until"
//	drop_responses, drop_rate            imports committed, then left unanswered
//
// Faults and rate limits apply to every request but those to /sim/.
// Durations in Options run on real timers (latency) or on [Options.Now]
// (token expiry, rate-limit windows, outage ends).
//
// Deliberate simplifications, each a place where a real instance is more
// elaborate: one OAuth client and one user; rate-limit windows start with
// the first request after the previous window (ServiceNow counts per clock
// hour), and token requests are not rate limited; one transform map; values sent to the Import Set API that are not strings are
// stringified (numbers and booleans as their JSON text, null as empty,
// objects and arrays as compact JSON), where a real instance mangles them in
// less predictable ways; staging columns the table does not have are dropped
// (they are still visible in the request log). Where the real wording of an
// answer was not documented (the 429 body, the 403 of a missing write
// ACL, the 503 of an outage), the emulator's is ServiceNow's error shape
// with a plausible message.
//
// The server is safe for concurrent use.
package emulator
