package doctor

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/ionix/ionixsnow/servicenow"
)

// Fixes of the OAuth diagnosis, each naming the setup step.
const (
	fixClient = "check servicenow.client_id and servicenow.client_secret against System OAuth > Application Registry > " +
		"IONIX (press the lock on Client Secret to see it) — README step 1"
	fixUser = "check servicenow.username and servicenow.password: System Security > Users, the user must exist, be " +
		"active and not locked out — README step 7"
	fixRefresh = "get a new refresh token (README step 9; refresh tokens expire after 100 days) and set " +
		"servicenow.refresh_token"
	fixClientOrRefresh = "either the OAuth client (README step 1) or the refresh token (expired after 100 days? " +
		"README step 9) is wrong; configure username and password too and run doctor again to tell which"
)

// checkOAuth obtains a token and, when ServiceNow refuses, works out which
// credential is wrong. The first result is always the "oauth" check.
func checkOAuth(ctx context.Context, o Options, c servicenow.Config, client *servicenow.Client) []Result {
	hasPassword := c.Username != "" && c.Password != ""
	hasRefresh := c.RefreshToken != ""
	err := client.Authenticate(ctx)
	if err == nil {
		r := Result{Check: "oauth", Status: StatusOK, Detail: "access token obtained with the " + grantName(hasPassword, hasRefresh)}
		if hasPassword && hasRefresh {
			// The client falls back to the password grant: see whether the
			// refresh token works on its own.
			if warn := refreshTokenAlone(ctx, o, c); warn != nil {
				return []Result{{Check: "oauth", Status: StatusOK, Detail: "access token obtained with the password grant"}, *warn}
			}
		}
		return []Result{r}
	}
	if servicenow.ErrorClass(err) == servicenow.ClassTransient {
		return []Result{{Check: "oauth", Status: StatusFail, Detail: "the token request failed: " + err.Error(),
			Fix: "ServiceNow did not answer the token request properly; check that the instance is up and run doctor again"}}
	}
	r := Result{Check: "oauth", Status: StatusFail}
	switch {
	case hasPassword:
		userOK, probeErr := passwordAccepted(ctx, o, c)
		switch {
		case probeErr != nil:
			r.Detail, r.Fix = "ServiceNow refused the credentials: "+err.Error(), fixClient+"; or "+fixUser
		case userOK:
			r.Detail, r.Fix = "the OAuth client id or secret is wrong (the user and password are accepted)", fixClient
		default:
			r.Detail, r.Fix = "the username or password is wrong (ServiceNow refuses them for basic authentication too)", fixUser
		}
	default:
		r.Detail, r.Fix = "ServiceNow refused the client id/secret or the refresh token", fixClientOrRefresh
	}
	return []Result{r}
}

func grantName(hasPassword, hasRefresh bool) string {
	if hasRefresh {
		return "refresh-token grant"
	}
	return "password grant"
}

// refreshTokenAlone tries the refresh-token grant without the password fallback and
// returns a warning when it fails.
func refreshTokenAlone(ctx context.Context, o Options, c servicenow.Config) *Result {
	c.Username, c.Password = "", ""
	alone, err := servicenow.New(c, o.Log)
	if err != nil {
		return nil
	}
	if err := alone.Authenticate(ctx); err != nil && servicenow.ErrorClass(err) != servicenow.ClassTransient {
		return &Result{Check: "refresh_token", Status: StatusWarn,
			Detail: "the refresh token is refused (the password grant works, so sending is not affected)", Fix: fixRefresh}
	}
	return nil
}

// passwordAccepted asks the REST API with basic authentication whether ServiceNow
// knows the user and password: 401 means it does not; any other answer (200, 403 for
// a user without read access) that it does.
func passwordAccepted(ctx context.Context, o Options, c servicenow.Config) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimRight(c.InstanceURL, "/")+"/api/now/table/sys_user?sysparm_limit=1&sysparm_fields=sys_id", nil)
	if err != nil {
		return false, err
	}
	req.SetBasicAuth(c.Username, c.Password)
	req.Header.Set("Accept", "application/json")
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return false, errors.New("basic authentication probe failed: " + networkReason(err))
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return false, nil
	case resp.StatusCode >= 500 || strings.Contains(resp.Header.Get("Content-Type"), "html"):
		return false, errors.New("basic authentication probe inconclusive")
	}
	return true, nil
}
