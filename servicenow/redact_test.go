package servicenow

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestNoSecretLeaks runs failing and succeeding authentication, renewals,
// re-authentication on 401 and imports against servers that echo what they
// receive, and checks that no secret reaches the log, an error string or
// the emulator's request log.
func TestNoSecretLeaks(t *testing.T) {
	const revoked = "revoked-REFRESH-token-value"
	e := newEnv(t, emulator.Options{})
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	ctx := t.Context()

	// Failing authentication: wrong password, then wrong client secret.
	bad := e.config()
	bad.Password = "WRONG-" + testPassword
	note(e.client(bad).Authenticate(ctx))
	bad = e.config()
	bad.ClientSecret = "WRONG-" + testClientSecret
	_, err := e.client(bad).Import(ctx, record("ionix:1"))
	note(err)

	// Succeeding: refresh token rejected then password, imports, renewal
	// before expiry, re-authentication after a 401.
	cfg := e.config()
	cfg.RefreshToken = revoked
	c := e.client(cfg, WithClock(e.clock.Now))
	for i := range 3 {
		_, err := c.Import(ctx, record(fmt.Sprint("ionix:", i)))
		note(err)
		e.clock.Advance(29*time.Minute + 30*time.Second)
	}
	c2 := e.client(e.config(), WithClock(testkit.NewClock(clockStart).Now))
	_, err = c2.Import(ctx, record("ionix:x"))
	note(err)
	e.clock.Advance(time.Hour)
	_, err = c2.Import(ctx, record("ionix:x"))
	note(err)
	_, err = c2.FindIncidents(ctx, "ionix:x")
	note(err)

	// The emulator's faults and the probe.
	note(c2.Probe(ctx))
	for _, sw := range []emulator.Config{
		{Hibernating: true},
		{Outage: emulator.Outage{Mode: emulator.Outage503}},
		{Outage: emulator.Outage{Mode: emulator.OutageReset}},
		{ErrorRate: 1},
		{DropResponses: 1},
		{Roles: []string{}},
		{MissingACLs: []string{emulator.ACLCreate, emulator.ACLIncidentRead}},
	} {
		if err := e.emu.SetConfig(sw); err != nil {
			t.Fatal(err)
		}
		_, err := c2.Import(ctx, record("ionix:fault"))
		note(err)
		note(c2.Probe(ctx))
		_, err = c2.FindIncidents(ctx, "ionix:fault")
		note(err)
		note(e.client(e.config()).Authenticate(ctx))
	}
	_ = e.emu.SetConfig(emulator.Config{RateLimit: emulator.RateLimit{Requests: 1}})
	c3 := e.client(e.config())
	for range 2 {
		_, err := c3.Import(ctx, record("ionix:limited"))
		note(err)
	}
	_ = e.emu.SetConfig(emulator.Config{})

	// A server that echoes the request (headers and body) into its errors.
	e.setStub(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		msg, _ := json.Marshal(r.Header.Get("Authorization") + " " + string(body))
		switch r.URL.Path {
		case "/api/now/table/incident":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "<html><title>%s</title></html>", r.Header.Get("Authorization"))
		default:
			writeJSON(w, 400, `{"error":{"message":`+string(msg)+`,"detail":`+string(msg)+`},"status":"failure"}`)
		}
	})
	_, err = c.Import(ctx, record("ionix:echo"))
	note(err)
	_, err = c.FindIncidents(ctx, "ionix:echo")
	note(err)

	// A token endpoint that echoes the form.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		desc, _ := json.Marshal(r.PostForm.Encode())
		switch r.PostForm.Get("grant_type") {
		case "refresh_token":
			writeJSON(w, 401, `{"error":"access_denied","error_description":`+string(desc)+`}`)
		default:
			writeJSON(w, 500, `{"nothing":`+string(desc)+`}`)
		}
	}))
	defer echo.Close()
	cfg.InstanceURL = echo.URL
	note(e.client(cfg).Authenticate(ctx)) // refresh token rejected, password fails
	only2 := cfg
	only2.Username, only2.Password = "", ""
	note(e.client(only2).Authenticate(ctx)) // refresh token rejected
	cfg.RefreshToken = ""
	note(e.client(cfg).Authenticate(ctx))

	secrets := append([]string{testClientSecret, testPassword, revoked}, e.issuedTokens()...)
	if len(secrets) < 8 {
		t.Fatalf("only %d secrets: the scenario did not run", len(secrets))
	}
	if len(errs) < 25 {
		t.Fatalf("only %d errors: %v", len(errs), errs)
	}
	reqs, _ := json.Marshal(e.emu.Requests())
	sim, err := http.Get(e.ts.URL + "/sim/requests")
	if err != nil {
		t.Fatal(err)
	}
	simBody, _ := io.ReadAll(sim.Body)
	sim.Body.Close()
	simCfg, err := http.Get(e.ts.URL + "/sim/config")
	if err != nil {
		t.Fatal(err)
	}
	simCfgBody, _ := io.ReadAll(simCfg.Body)
	simCfg.Body.Close()
	places := map[string]string{
		"log":                  e.logs.String(),
		"emulator request log": string(reqs),
		"/sim/requests":        string(simBody),
		"/sim/config":          string(simCfgBody),
	}
	for i, err := range errs {
		places[fmt.Sprint("error ", i)] = err.Error() + fmt.Sprintf(" %+v %v", err, err)
	}
	for i, err := range errs {
		t.Logf("error %d: %v", i, err)
	}
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains the secret %.6s…:\n%s", where, s, text)
			}
		}
	}
	if !strings.Contains(places["error 0"], "access_denied") {
		t.Errorf("redaction went too far: %s", places["error 0"])
	}
	if !strings.Contains(strings.Join(mapValues(places), " "), Redacted) {
		t.Error("nothing was redacted: the echoing servers did not echo")
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
