package main

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/embedded"
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
