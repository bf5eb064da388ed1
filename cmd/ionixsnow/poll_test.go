package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

// TestPollOnce runs `poll --once --json` as cron would: the first run publishes the
// open items, the second nothing; a wrong token fails with exit 1 and never shows it.
func TestPollOnce(t *testing.T) {
	const token = "ionix-api-token-5be0c1"
	api := ionixsim.New(ionixsim.Options{Token: token, Account: "acme", MaxPageSize: 2})
	api.SetOpen(ionixsim.Sample(5, 11)...)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ns := natstest.Start(t)
	vars := map[string]string{
		"IONIXSNOW_NATS_URL":      ns.URL(),
		"IONIXSNOW_IONIX_API_URL": srv.URL,
		"IONIXSNOW_IONIX_TOKEN":   token,
		"IONIXSNOW_IONIX_ACCOUNT": "acme",
		"IONIXSNOW_LOG_FORMAT":    "json",
	}
	type result struct {
		Open, New, Unchanged, Published int
		Error                           string
	}
	pollOnce := func(vars map[string]string) (int, result, string) {
		t.Helper()
		code, stdout, stderr := runInProcess(t, vars, "", "poll", "--once", "--json")
		var r result
		if code == 0 {
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("poll --json printed %q: %v", stdout, err)
			}
		}
		return code, r, stdout + stderr
	}

	code, r, out := pollOnce(vars)
	if code != exitOK || r.Open != 5 || r.New != 5 || r.Published != 5 {
		t.Fatalf("first poll: exit %d, %+v\n%s", code, r, out)
	}
	code, r, out = pollOnce(vars)
	if code != exitOK || r.Unchanged != 5 || r.Published != 0 {
		t.Fatalf("second poll: exit %d, %+v; want nothing published\n%s", code, r, out)
	}

	bad := map[string]string{}
	for k, v := range vars {
		bad[k] = v
	}
	bad["IONIXSNOW_IONIX_TOKEN"] = "wrong-token-77aa"
	code, _, out = pollOnce(bad)
	if code != exitFailed || !strings.Contains(out, "ionix.token") {
		t.Errorf("poll with a wrong token: exit %d, want 1 with a hint about ionix.token\n%s", code, out)
	}
	for _, secret := range []string{token, "wrong-token-77aa"} {
		if strings.Contains(out, secret) {
			t.Errorf("the token %q appears in the output:\n%s", secret, out)
		}
	}

	code, _, out = pollOnce(map[string]string{"IONIXSNOW_NATS_URL": ns.URL()})
	if code != exitUsage || !strings.Contains(out, "ionix.token") || !strings.Contains(out, "ionix.account") {
		t.Errorf("poll without IONIX credentials: exit %d, want 2 naming the keys\n%s", code, out)
	}
}
