package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/config"
)

// envOf returns a lookupEnv over m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// problemsOf returns the problems in err, failing the test if err is not a
// Problems error.
func problemsOf(t *testing.T, err error) config.Problems {
	t.Helper()
	if err == nil {
		t.Fatal("want problems, got nil error")
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %T is not config.Problems: %v", err, err)
	}
	return ps
}

// wantKeys checks that exactly the keys want have problems (in any order).
func wantKeys(t *testing.T, err error, want ...string) {
	t.Helper()
	ps := problemsOf(t, err)
	got := ps.Keys()
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	w = slices.Compact(w)
	if !slices.Equal(got, w) {
		t.Errorf("problem keys = %q, want %q\nerror:\n%v", got, w, err)
	}
}

// wantText checks that the error text contains every part.
func wantText(t *testing.T, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error text lacks %q:\n%v", p, err)
		}
	}
}

// validCreds are placeholder credentials that satisfy every Needs.
var validCreds = map[string]string{
	"IONIXSNOW_SERVICENOW_INSTANCE_URL":  "https://dev12345.service-now.com",
	"IONIXSNOW_SERVICENOW_CLIENT_ID":     "placeholder-client-id",
	"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "placeholder-client-secret",
	"IONIXSNOW_SERVICENOW_USERNAME":      "ionix.integration",
	"IONIXSNOW_SERVICENOW_PASSWORD":      "placeholder-password",
	"IONIXSNOW_IONIX_TOKEN":              "placeholder-token",
	"IONIXSNOW_IONIX_ACCOUNT":            "placeholder-account",
}
