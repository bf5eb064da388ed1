package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// TestPollEveryActiveTenant: `poll --once` with a keyset polls the single-tenant form's
// account and every active tenant's with its own token, each into its own subjects and
// poller state; an inactive tenant, and one without IONIX settings, are not polled.
func TestPollEveryActiveTenant(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	dir := t.TempDir()
	keyset := filepath.Join(dir, "keyset.json")
	accounts := map[string]*ionixsim.Server{}
	urls := map[string]string{}
	for i, id := range []string{"single", "acme", "globex", "sleepy"} {
		api := ionixsim.New(ionixsim.Options{Token: "tok-" + id + "-77a1", Account: id})
		api.SetOpen(ionixsim.Sample(2+i, int64(i))...)
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		accounts[id], urls[id] = api, srv.URL
	}
	vars := map[string]string{
		"IONIXSNOW_NATS_URL": ns.URL(), "IONIXSNOW_LOG_FORMAT": "json", "IONIXSNOW_SECRETS_KEYSET_FILE": keyset,
		"IONIXSNOW_IONIX_API_URL": urls["single"], "IONIXSNOW_IONIX_TOKEN": "tok-single-77a1", "IONIXSNOW_IONIX_ACCOUNT": "single",
	}
	run := func(vars map[string]string, args ...string) string {
		t.Helper()
		code, out, errs := runInProcess(t, vars, "", args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		return out
	}
	run(vars, "keys", "init", "--out", keyset)
	putVars := map[string]string{"IONIXSNOW_NATS_URL": ns.URL(), "IONIXSNOW_LOG_FORMAT": "json", "IONIXSNOW_SECRETS_KEYSET_FILE": keyset}
	for _, id := range []string{"acme", "globex", "sleepy", "noionix"} {
		body := "servicenow: {instance_url: https://" + id + ".service-now.com, client_id: c, client_secret: s, username: u, password: p}\n"
		if id != "noionix" {
			body += "ionix: {api_url: " + urls[id] + ", account: " + id + ", token: tok-" + id + "-77a1}\n"
		}
		f := filepath.Join(dir, id+".yaml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		run(putVars, "tenant", "put", id, "--file", f)
		if id != "sleepy" {
			run(putVars, "tenant", "activate", id)
		}
	}
	out := run(vars, "poll", "--once", "--json")
	published := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			Tenant    string `json:"tenant"`
			Published int    `json:"published"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		published[r.Tenant] = r.Published
	}
	if len(published) != 3 || published["default"] != 2 || published["acme"] != 3 || published["globex"] != 4 {
		t.Fatalf("published by tenant = %v; want default 2, acme 3, globex 4 (sleepy inactive, noionix without IONIX settings)\n%s", published, out)
	}
	js := natstest.Connect(t, ns.URL())
	st, err := js.Stream(context.Background(), "IONIX_ACTION_ITEMS")
	if err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]uint64{"ionix.action_items.acme.>": 3, "ionix.action_items.globex.>": 4, "ionix.action_items.*.*": 2, "ionix.action_items.sleepy.>": 0} {
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(prefix))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		if n != want {
			t.Errorf("%d messages on %s, want %d", n, prefix, want)
		}
	}
	// A second round publishes nothing: each tenant's poller state is its own.
	out = run(vars, "poll", "--once", "--json")
	if strings.Contains(out, `"published":1`) || strings.Contains(out, `"published":2`) || strings.Contains(out, `"published":3`) {
		t.Errorf("second poll published again:\n%s", out)
	}
	for id := range accounts {
		if strings.Contains(out, "tok-"+id) {
			t.Errorf("a token is shown:\n%s", out)
		}
	}
}
