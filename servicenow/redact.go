package servicenow

import (
	"encoding/base64"
	"net/url"

	"github.com/ionix/ionixsnow/remote"
)

// Redacted replaces secret values in anything the client reports.
const Redacted = "[REDACTED]"

// Bounds of what a message repeats of an answer, applied after redaction.
const (
	maxTextMessage = 200  // a text body
	maxTitle       = 100  // the title of an HTML page
	maxJSONMessage = 1000 // a message from a JSON error body, an import result or a grant error
	maxHeader      = 200  // a header value (Location, X-RateLimit-Rule)
	htmlHead       = 4096 // how much of an HTML page is searched for its title
)

// newRedactor returns the one rule ([remote.Redactor]) by which the client
// removes secrets from what it reports: the client secret, the password and
// the configured refresh token (the authenticator adds the tokens ServiceNow
// issues). The client sends the OAuth client's credentials in the form body
// (oauth2.AuthStyleInParams), never in a Basic Authorization header; should
// that ever change, their base64 form (as x/oauth2 and others encode it) is
// redacted too.
func newRedactor(cfg Config) *remote.Redactor {
	basic := func(id, secret string) string {
		return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
	}
	return remote.NewRedactor(Redacted, cfg.ClientSecret, cfg.Password, cfg.RefreshToken,
		basic(cfg.ClientID, cfg.ClientSecret), basic(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret)))
}
