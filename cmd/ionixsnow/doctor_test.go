package main

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/doctor"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

func TestDoctorCommand(t *testing.T) {
	ns, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	const secret, password, wrong = "doctor-cmd-secret-5b2e", "doctor-cmd-password-91fa", "doctor-cmd-WRONG-77c0"
	sim := emulator.New(emulator.Options{ClientID: "ionix-doc", ClientSecret: secret, Username: "svc.doc", Password: password})
	snow := httptest.NewServer(sim)
	t.Cleanup(snow.Close)
	vars := func(pw string) map[string]string {
		return map[string]string{
			"IONIXSNOW_NATS_URL":                 ns.URL(),
			"IONIXSNOW_SERVICENOW_INSTANCE_URL":  snow.URL,
			"IONIXSNOW_SERVICENOW_CLIENT_ID":     "ionix-doc",
			"IONIXSNOW_SERVICENOW_CLIENT_SECRET": secret,
			"IONIXSNOW_SERVICENOW_USERNAME":      "svc.doc",
			"IONIXSNOW_SERVICENOW_PASSWORD":      pw,
		}
	}
	noSecrets := func(t *testing.T, out string) {
		t.Helper()
		for _, s := range []string{secret, password, wrong} {
			if strings.Contains(out, s) {
				t.Errorf("secret %q in the output:\n%s", s, out)
			}
		}
	}

	t.Run("good setup", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, vars(password), "", "doctor", "--send-test")
		if code != exitOK {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitOK, stdout, stderr)
		}
		for _, re := range []string{
			`(?m)^\[OK\]\s+nats\s+connected to nats://`,
			`(?m)^\[OK\]\s+jetstream\s+enabled`,
			`(?m)^\[WARN\]\s+stream\s+stream IONIX_ACTION_ITEMS does not exist yet`,
			`(?m)^\[OK\]\s+servicenow_url\s+`,
			`(?m)^\[OK\]\s+oauth\s+access token obtained with the password grant`,
			`(?m)^\[OK\]\s+import_table\s+`,
			`(?m)^\[OK\]\s+field_lengths\s+`,
			`(?m)^\[OK\]\s+send_test\s+incident INC0010001 inserted`,
			`(?m)^\[OK\]\s+coalesce\s+a second send of the test item updated INC0010001`,
			`(?m)^\[OK\]\s+field_truncation\s+INC0010001 holds the whole name and body`,
			`(?m)^all checks passed$`,
		} {
			if !regexp.MustCompile(re).MatchString(stdout) {
				t.Errorf("output lacks a line matching %s:\n%s", re, stdout)
			}
		}
		noSecrets(t, stdout+stderr)
		if n := len(sim.Incidents()); n != 1 {
			t.Errorf("%d incidents, want the one test incident", n)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, vars(wrong), "", "doctor", "--send-test")
		if code != exitFailed {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailed, stdout, stderr)
		}
		for _, re := range []string{
			`(?m)^\[OK\]\s+servicenow_url\s+`,
			`(?m)^\[FAIL\]\s+oauth\s+the username or password is wrong`,
			`(?m)^\s+fix: check servicenow.username and servicenow.password: System Security > Users.*README step 7$`,
			`(?m)^\[SKIP\]\s+import_table\s+skipped: no OAuth token`,
			`(?m)^1 check\(s\) failed$`,
		} {
			if !regexp.MustCompile(re).MatchString(stdout) {
				t.Errorf("output lacks a line matching %s:\n%s", re, stdout)
			}
		}
		if strings.Contains(stdout, "send_test") {
			t.Errorf("send_test ran without a token:\n%s", stdout)
		}
		noSecrets(t, stdout+stderr)
	})
}

// TestDoctorJSONFailures: with --json doctor answers in JSON whatever fails: a
// configuration that does not load is one object with every problem (exit 2),
// an unreachable NATS a failed check in the results (exit 1).
func TestDoctorJSONFailures(t *testing.T) {
	snow := httptest.NewServer(emulator.New(emulator.Options{}))
	t.Cleanup(snow.Close)
	creds := map[string]string{
		"IONIXSNOW_NATS_URL":                 "nats://" + freeAddr(t), // nothing listens
		"IONIXSNOW_SERVICENOW_INSTANCE_URL":  snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID":     "ionix",
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "ionix",
		"IONIXSNOW_SERVICENOW_USERNAME":      "ionix",
		"IONIXSNOW_SERVICENOW_PASSWORD":      "ionix",
	}

	t.Run("configuration problems", func(t *testing.T) {
		vars := map[string]string{"IONIXSNOW_SERVICENOW_INSTANCE_URL": "http://snow.example.com", "IONIXSNOW_LOG_LEVL": "debug"}
		code, stdout, stderr := runInProcess(t, vars, "", "doctor", "--json")
		if code != exitUsage {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitUsage, stdout, stderr)
		}
		var got jsonFailure
		if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.Error == "" {
			t.Fatalf("stdout is not a JSON failure (%v):\n%s", err, stdout)
		}
		keys := map[string]bool{}
		for _, p := range got.Problems {
			keys[p.Key] = true
		}
		for _, k := range []string{"servicenow.instance_url", "servicenow.client_id", "IONIXSNOW_LOG_LEVL"} {
			if !keys[k] {
				t.Errorf("problems lack %s: %+v", k, got.Problems)
			}
		}
	})

	t.Run("NATS unreachable", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, creds, "", "doctor", "--json")
		if code != exitFailed {
			t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailed, stdout, stderr)
		}
		var rs []doctor.Result
		if err := json.Unmarshal([]byte(stdout), &rs); err != nil || len(rs) == 0 || rs[0].Check != "nats" || rs[0].Status != doctor.StatusFail || rs[0].Fix == "" {
			t.Fatalf("stdout is not the results with nats failed (%v):\n%s", err, stdout)
		}
	})
}

// TestDoctorAcceptsWhatConsumeAccepts: servicenow.allow_insecure_http lets doctor
// reach a plain http instance beyond loopback (the emulator in docker compose), as
// it lets consume.
func TestDoctorAcceptsWhatConsumeAccepts(t *testing.T) {
	ns, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	host := testkit.NonLoopbackIPv4(t)
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", host, err)
	}
	snow := httptest.NewUnstartedServer(emulator.New(emulator.Options{}))
	snow.Listener.Close()
	snow.Listener = l
	snow.Start()
	t.Cleanup(snow.Close)
	vars := map[string]string{
		"IONIXSNOW_NATS_URL":                       ns.URL(),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL":        snow.URL,
		"IONIXSNOW_SERVICENOW_ALLOW_INSECURE_HTTP": "true",
		"IONIXSNOW_SERVICENOW_CLIENT_ID":           "ionix",
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET":       "ionix",
		"IONIXSNOW_SERVICENOW_USERNAME":            "ionix",
		"IONIXSNOW_SERVICENOW_PASSWORD":            "ionix",
	}
	code, stdout, stderr := runInProcess(t, vars, "", "doctor", "--send-test")
	if code != exitOK {
		t.Fatalf("doctor refused a configuration consume runs with: exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestDoctorSendTestWithoutCoalesce: on an instance whose transform map does not
// coalesce on correlation_id, every --send-test fails naming the setup step,
// the first run as the second.
func TestDoctorSendTestWithoutCoalesce(t *testing.T) {
	ns, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	snow := httptest.NewServer(emulator.New(emulator.Options{NoCoalesce: true}))
	t.Cleanup(snow.Close)
	vars := map[string]string{
		"IONIXSNOW_NATS_URL":                 ns.URL(),
		"IONIXSNOW_SERVICENOW_INSTANCE_URL":  snow.URL,
		"IONIXSNOW_SERVICENOW_CLIENT_ID":     "ionix",
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "ionix",
		"IONIXSNOW_SERVICENOW_USERNAME":      "ionix",
		"IONIXSNOW_SERVICENOW_PASSWORD":      "ionix",
	}
	for run := 1; run <= 2; run++ {
		code, stdout, stderr := runInProcess(t, vars, "", "doctor", "--send-test")
		if code != exitFailed {
			t.Fatalf("run %d: exit %d, want %d; stdout:\n%s\nstderr:\n%s", run, code, exitFailed, stdout, stderr)
		}
		for _, re := range []string{
			`(?m)^\[FAIL\]\s+coalesce\s+a second send of the same test item answered inserted INC\d+`,
			`(?m)^\s+fix: open the transform map ionix_action_item and tick Coalesce on the field map correlation_id → Correlation ID \(README ServiceNow setup, step 4\)`,
			`(?m)^1 check\(s\) failed$`,
		} {
			if !regexp.MustCompile(re).MatchString(stdout) {
				t.Errorf("run %d: output lacks a line matching %s:\n%s", run, re, stdout)
			}
		}
	}
}
