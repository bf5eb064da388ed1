// Package doctor checks, one step at a time, everything ionixsnow needs — NATS and
// JetStream, the stream and consumer, the ServiceNow URL, OAuth, the import table,
// its roles and ACLs, and the staging field lengths — and says for each failure which
// setup step fixes it. `ionixsnow doctor` prints its results; `--send-test` also
// sends one marked test item twice, checks that the second send updated the
// incident of the first (coalesce on correlation_id), and reads the incident back.
//
// OAuth failures look alike from the outside (ServiceNow answers 401 access_denied
// for a wrong client, a wrong user and an expired refresh token alike), so doctor
// tells them apart by asking around them: the user's password is tried with basic
// authentication on the REST API (401 means the user or password is wrong, anything
// else that they are right and the OAuth client is wrong), and with both grants
// configured the password grant tells a bad refresh token from a bad client.
package doctor
