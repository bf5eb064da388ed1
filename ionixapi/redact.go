package ionixapi

import "github.com/ionix/ionixsnow/remote"

// Redacted replaces the token in anything the client reports.
const Redacted = "[REDACTED]"

// Bounds of what a message repeats of an answer, applied after redaction.
const (
	maxTextMessage = 200  // a text body, a JSON detail, a Location
	maxSnippet     = 100  // an HTML title, the start of a non-JSON body, a host name
	maxValue       = 40   // a JSON value or a port
	maxErrorText   = 1000 // the text of a network error (it holds the URL)
	bodyHead       = 4096 // how much of a body is searched for a title or shown
)

// newRedactor returns the one rule ([remote.Redactor]) by which the client
// removes the token from what it reports.
func newRedactor(token string) *remote.Redactor { return remote.NewRedactor(Redacted, token) }
