package servicenow

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"github.com/ionix/ionixsnow/remote"
)

// authenticator holds the client's token and obtains new ones through
// golang.org/x/oauth2. It renews a token early by its own clock (x/oauth2's
// reuse source uses the wall clock, which tests cannot move) and makes one
// grant at a time.
type authenticator struct {
	log                zerolog.Logger
	conf               *oauth2.Config
	hc                 *http.Client
	now                func() time.Time
	early              time.Duration
	timeout            time.Duration
	username, password string
	red                *remote.Redactor
	gate               *gate

	sem chan struct{} // held while a grant is in flight

	mu      sync.Mutex
	access  string
	expiry  time.Time // zero: no known expiry (valid until a 401)
	refresh string    // the refresh token to use next
}

func newAuthenticator(c *Client, early time.Duration) *authenticator {
	return &authenticator{
		log: c.log,
		conf: &oauth2.Config{
			ClientID:     c.cfg.ClientID,
			ClientSecret: c.cfg.ClientSecret,
			Endpoint: oauth2.Endpoint{
				TokenURL:  c.cfg.InstanceURL + "/oauth_token.do",
				AuthStyle: oauth2.AuthStyleInParams, // ServiceNow reads them from the form body
			},
		},
		hc:       c.hc,
		now:      c.now,
		early:    early,
		timeout:  c.cfg.Timeout,
		username: c.cfg.Username,
		password: c.cfg.Password,
		red:      c.red,
		gate:     c.gate,
		sem:      make(chan struct{}, 1),
		refresh:  c.cfg.RefreshToken,
	}
}

// current returns the token held if it is not about to expire.
func (a *authenticator) current() (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.access == "" {
		return "", false
	}
	if !a.expiry.IsZero() && !a.now().Add(a.early).Before(a.expiry) {
		return "", false
	}
	return a.access, true
}

// invalidate drops the token if it is still tok (another request may
// already have replaced it).
func (a *authenticator) invalidate(tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.access == tok {
		a.access, a.expiry = "", time.Time{}
	}
}

// drop drops the token, whatever it is.
func (a *authenticator) drop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.access, a.expiry = "", time.Time{}
}

// token returns a valid access token, obtaining one if needed.
func (a *authenticator) token(ctx context.Context) (string, error) {
	if tok, ok := a.current(); ok {
		return tok, nil
	}
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return "", &Error{Class: ClassTransient, Op: OpAuthenticate, Message: ctx.Err().Error(), Err: ctx.Err()}
	}
	defer func() { <-a.sem }()
	for {
		if tok, ok := a.current(); ok { // obtained while we waited
			return tok, nil
		}
		if err := a.gate.wait(ctx); err != nil {
			return "", &Error{Class: ClassTransient, Op: OpAuthenticate, Message: err.Error(), Err: err}
		}
		tok, err := a.grant(ctx)
		if !isPaused(err) {
			return tok, err
		}
	}
}

// grant obtains a token: refresh_token grant when a refresh token is known,
// falling back to the password grant when ServiceNow rejects it and a
// password is configured; otherwise the password grant.
func (a *authenticator) grant(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, a.hc)

	a.mu.Lock()
	rt := a.refresh
	a.mu.Unlock()

	var (
		tok       *oauth2.Token
		err       error
		grantType string
	)
	if rt != "" {
		grantType = "refresh_token"
		// A token without an access token is expired: the source makes a
		// refresh_token grant and, if the answer has no refresh_token,
		// keeps this one (x/oauth2 internal.RetrieveToken).
		tok, err = a.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
		if err != nil && a.password != "" && rejected(err) {
			a.log.Warn().Msg("ServiceNow rejected the refresh token; falling back to the password grant")
			a.mu.Lock()
			if a.refresh == rt {
				a.refresh = ""
			}
			a.mu.Unlock()
			tok, err = nil, nil
		}
	}
	if tok == nil && err == nil {
		grantType = "password"
		tok, err = a.conf.PasswordCredentialsToken(ctx, a.username, a.password)
	}
	if err != nil {
		e := a.grantError(grantType, err)
		a.log.Warn().Str("grant_type", grantType).Str("class", e.Class.String()).Int("status", e.StatusCode).
			Str("error", e.Message).Msg("ServiceNow token request failed")
		return "", e
	}

	now := a.now()
	var expiry time.Time
	switch {
	case tok.ExpiresIn > 0:
		expiry = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		expiry = now.Add(time.Until(tok.Expiry))
	}
	a.red.Add(tok.AccessToken, tok.RefreshToken)
	a.mu.Lock()
	a.access, a.expiry = tok.AccessToken, expiry
	if tok.RefreshToken != "" {
		a.refresh = tok.RefreshToken
	}
	a.mu.Unlock()
	a.log.Debug().Str("grant_type", grantType).Int64("expires_in", tok.ExpiresIn).Msg("obtained a ServiceNow token")
	return tok.AccessToken, nil
}

// rejected reports whether the token endpoint refused the grant (as opposed
// to failing to answer).
func rejected(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return false
	}
	return Classify(re.Response.StatusCode, re.Response.Header.Get("Content-Type"), "") != ClassTransient
}

// grantError classifies a failed grant. A refusal (4xx, or an error in a
// 2xx answer) is a configuration problem; no answer, 5xx, 429 or an HTML
// page is transient.
func (a *authenticator) grantError(grantType string, err error) *Error {
	if pe := (*pausedError)(nil); errors.As(err, &pe) {
		return &Error{Class: ClassTransient, Op: OpAuthenticate, StatusCode: http.StatusTooManyRequests,
			Message: pe.Error(), RetryAfter: time.Until(pe.until)}
	}
	if he := (*htmlTokenError)(nil); errors.As(err, &he) {
		return &Error{Class: ClassTransient, Op: OpAuthenticate, StatusCode: he.resp.status,
			Message: grantType + " grant failed: " + serverMessage(he.resp, a.red)}
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		msg, cause := a.red.RedactErr(err, maxJSONMessage)
		return &Error{Class: ClassTransient, Op: OpAuthenticate, Message: msg, Err: cause}
	}
	resp := &response{
		status:      re.Response.StatusCode,
		header:      re.Response.Header,
		contentType: re.Response.Header.Get("Content-Type"),
		body:        re.Body,
	}
	class := Classify(resp.status, resp.contentType, "")
	if class != ClassTransient {
		class = ClassConfiguration
	}
	msg := grantType + " grant failed: "
	switch {
	case re.ErrorCode != "" && re.ErrorDescription != "":
		msg += a.red.RedactClip(re.ErrorCode+" ("+re.ErrorDescription+")", maxJSONMessage)
	case re.ErrorCode != "":
		msg += a.red.RedactClip(re.ErrorCode, maxJSONMessage)
	default:
		msg += serverMessage(resp, a.red)
	}
	e := &Error{
		Class:      class,
		Op:         OpAuthenticate,
		StatusCode: resp.status,
		Message:    msg,
		RetryAfter: remote.RetryAfter(resp.header, a.now()),
	}
	if class == ClassConfiguration {
		switch {
		case resp.status >= 300 && resp.status <= 399, resp.status == http.StatusNotFound:
			e.Fix = fixFor(OpAuthenticate, resp, msg, a.red)
		case grantType == "refresh_token":
			e.Fix = fixRefreshToken
		default:
			e.Fix = fixClientCredentials + "; " + fixPassword
		}
	}
	return e
}
