package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
	"github.com/ionix/ionixsnow/servicenow/emulator"
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

// TestPollOnceSkipsOversizedItems: `poll --once` names an item too large for one
// message (the server's 1 MiB max_payload), publishes the others and exits 1;
// the next poll names it again and closes nothing.
func TestPollOnceSkipsOversizedItems(t *testing.T) {
	api := ionixsim.New(ionixsim.Options{MaxPageSize: 2})
	big := json.RawMessage(itemOfMessageSize(t, "too-big", 1<<20+1))
	api.SetOpen(append([]json.RawMessage{big}, ionixsim.Sample(3, 7)...)...)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	vars := map[string]string{
		"IONIXSNOW_NATS_URL":      natstest.Start(t).URL(),
		"IONIXSNOW_IONIX_API_URL": srv.URL,
		"IONIXSNOW_IONIX_TOKEN":   ionixsim.DefaultToken,
		"IONIXSNOW_IONIX_ACCOUNT": ionixsim.DefaultAccount,
		"IONIXSNOW_LOG_FORMAT":    "json",
	}
	for i, want := range []struct{ newItems, unchanged int }{{3, 0}, {0, 3}} {
		code, stdout, stderr := runInProcess(t, vars, "", "poll", "--once", "--json")
		var r struct {
			Open, New, Unchanged, Closed, Invalid, Published int
			Error                                            string
		}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("poll %d printed %q: %v\n%s", i+1, stdout, err, stderr)
		}
		if code != exitFailed || r.Open != 4 || r.New != want.newItems || r.Unchanged != want.unchanged || r.Invalid != 1 || r.Closed != 0 || r.Error != "" {
			t.Errorf("poll %d: exit %d, %+v; want exit 1, %d new, %d unchanged, 1 invalid, no error", i+1, code, r, want.newItems, want.unchanged)
		}
		if !strings.Contains(stderr, `"action_item":"too-big"`) || !strings.Contains(stderr, "over the limit of 1048576 bytes") {
			t.Errorf("poll %d does not name the item too large:\n%s", i+1, stderr)
		}
	}
}

// TestPollToResolvedIncident runs the whole chain: IONIX API -> poll -> stream ->
// consume (resolve_on_close) -> ServiceNow. An item whose urgency changes updates its
// incident; an item that closes in IONIX resolves it, and reopens it when IONIX
// detects it again.
func TestPollToResolvedIncident(t *testing.T) {
	api := ionixsim.New(ionixsim.Options{})
	api.SetOpen(ionixsim.Item("chain-1", "Open RDP on jump.example.com", "Vulnerability", 6.5),
		ionixsim.Item("chain-2", "Certificate expires in 20 days", "PKI", 5))
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)
	sim := emulator.New(emulator.Options{})
	snow := httptest.NewServer(sim)
	t.Cleanup(snow.Close)
	ns := natstest.Start(t)
	vars := map[string]string{
		"IONIXSNOW_NATS_URL":      ns.URL(),
		"IONIXSNOW_IONIX_API_URL": apiSrv.URL,
		"IONIXSNOW_IONIX_TOKEN":   ionixsim.DefaultToken,
		"IONIXSNOW_IONIX_ACCOUNT": ionixsim.DefaultAccount,
		"IONIXSNOW_LOG_FORMAT":    "json",
	}
	poll := func() {
		t.Helper()
		if code, stdout, stderr := runInProcess(t, vars, "", "poll", "--once", "--json"); code != exitOK {
			t.Fatalf("poll: exit %d\n%s%s", code, stdout, stderr)
		}
	}
	consume := startConsume(t, "", []string{
		"IONIXSNOW_NATS_URL=" + ns.URL(),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL=" + snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID=ionix", "IONIXSNOW_SERVICENOW_CLIENT_SECRET=ionix",
		"IONIXSNOW_SERVICENOW_USERNAME=ionix", "IONIXSNOW_SERVICENOW_PASSWORD=ionix",
		"IONIXSNOW_CONSUMER_RESOLVE_ON_CLOSE=true",
		"IONIXSNOW_LOG_FORMAT=json", "IONIXSNOW_HTTP_LISTEN=127.0.0.1:0",
	})
	poll()
	waitIncidents(t, sim, 2, consume)

	incident := func(id string) emulator.Incident {
		for _, in := range sim.Incidents() {
			if in.CorrelationID == "ionix:"+id {
				return in
			}
		}
		t.Fatalf("no incident for %s", id)
		return emulator.Incident{}
	}
	api.Upsert(ionixsim.Item("chain-1", "Open RDP on jump.example.com", "Vulnerability", 9.5))
	api.Close("chain-2", time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC))
	poll()
	testkit.WaitFor(t, 20*time.Second, "the urgency change and the closing to reach ServiceNow", func() bool {
		return incident("chain-1").Urgency == "1" && incident("chain-2").State == "6"
	})
	if in := incident("chain-2"); !strings.Contains(in.CloseNotes, "2026-11-23 08:00:00") {
		t.Errorf("close notes %q do not name the closing time", in.CloseNotes)
	}

	// IONIX detects chain-2 again an hour later, unchanged: its incident reopens.
	api.Reopen("chain-2", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	poll()
	testkit.WaitFor(t, 20*time.Second, "the reopening to reach ServiceNow", func() bool {
		return incident("chain-2").State == "2"
	})
	consume.stop(t)
	if n := len(sim.Incidents()); n != 2 {
		t.Errorf("%d incidents, want 2", n)
	}
	if in := incident("chain-2"); !strings.Contains(in.CloseNotes, "Reopened in IONIX at 2026-11-23 09:00:00") {
		t.Errorf("close notes %q do not name the reopening", in.CloseNotes)
	}
}
