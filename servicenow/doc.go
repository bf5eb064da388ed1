// Package servicenow is the ServiceNow client of ionixsnow: it obtains OAuth
// tokens, posts import records to the Import Set API of the customer's
// inbound web service and reads incidents back through the Table API.
//
// # Authentication
//
// Tokens come from POST {instance}/oauth_token.do through golang.org/x/oauth2
// (client_id and client_secret in the form body, as ServiceNow expects).
// Option 1 is the password grant (Config.Username and Config.Password),
// option 2 the refresh_token grant (Config.RefreshToken). The refresh token a
// grant returns is kept and used for the next renewal; a response without
// one keeps the old one. When both options are configured the refresh token
// is tried first and the password grant is the fall-back when ServiceNow
// rejects it. A token is renewed [DefaultEarlyExpiry] before it expires, by
// the client's clock ([WithClock]). On HTTP 401 from the API the client drops
// its token, authenticates again and retries once; a second 401 is a
// configuration problem.
//
// # Rate limits
//
// When any request (import, read, probe or token request) is answered 429,
// the whole [Client] pauses: it sends nothing more until Retry-After has
// passed (X-RateLimit-Reset, or [DefaultRateLimitPause], when there is no
// Retry-After). Requests wait for the end of the pause, honouring their
// context; a request that passed the gate just before the 429 arrived is
// held back, not sent. [Client.PausedUntil] tells when the pause ends and
// [Client.RateLimit] what the X-RateLimit-* headers last said. The pause
// runs on the wall clock, not on [WithClock].
//
// # Probing
//
// [Client.Probe] tells, without creating anything, whether sending would
// work now: a token, then a GET of a staging row that does not exist
// through the Import Set API (see its documentation for what it proves and
// what only an import can).
//
// # Outcomes
//
// Every failure is an [*Error] of one [Class], decided by [Classify] from the
// HTTP status, the content type and the import result status:
//
//   - [ClassTransient] ([ErrTransient]): network errors, timeouts, 1xx, 408,
//     409, 423, 425, 429 (with Retry-After), every 5xx, and an HTML page where
//     JSON was expected (a hibernating instance answers 200 with HTML; the
//     error then says [MsgHibernating]).
//     Retry with backoff; keep the message.
//   - [ClassConfiguration] ([ErrConfiguration]): 401 after re-authentication,
//     403, 404, any other 4xx not listed here, redirects (3xx; the client does
//     not follow them), OAuth rejecting the credentials, an import answered
//     without a result (no transform map) or with a result status this
//     package does not know. Sending must pause; [Error.Fix] names the setup
//     step that fixes it.
//   - [ClassPermanent] ([ErrRejected]): 400, 413, 414, 422, and an import
//     whose result status is error, ignored or skipped. Only this item is
//     affected; dead-letter it and go on.
//
// "skipped" is treated like "ignored" (ServiceNow skips a row whose coalesce
// values are missing): the incident was not written, and sending the same
// record again would be skipped again.
//
// # Secrets
//
// The client secret, the password, the refresh tokens and the access tokens
// never appear in log entries, error strings, the texts of a [Result] or
// [RateLimit]: what the server said (bodies, page titles, Location and
// X-RateLimit-Rule headers, network errors) is redacted by the rule of
// [github.com/ionix/ionixsnow/remote.Redactor] before it is cut short, with
// [Redacted] in place of any run of 8 characters of a secret (in any letter
// case, as is or escaped) and of a shorter secret where it stands as a whole
// token.
//
// All methods are safe for concurrent use and take a context first.
package servicenow
