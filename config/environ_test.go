package config_test

import (
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/config"
)

// environOf returns m as os.Environ would list it.
func environOf(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// TestLoadEnvironRefusesUnknownVariables: a misspelt IONIXSNOW_* variable is a
// problem like a misspelt YAML key (named, with a suggestion, listed with every
// other problem, its value never shown); the variables Kubernetes sets for a
// Service named ionixsnow-* are not ours and pass.
func TestLoadEnvironRefusesUnknownVariables(t *testing.T) {
	const value = "DNS-value-4b1f" // must never be shown
	tests := []struct {
		name     string
		env      map[string]string
		keys     []string // the problems, exactly
		text     []string
		warnings int
	}{
		{
			name: "singular for plural",
			env:  map[string]string{"IONIXSNOW_FILTER_CATEGORY": value},
			keys: []string{"IONIXSNOW_FILTER_CATEGORY"},
			text: []string{"IONIXSNOW_FILTER_CATEGORY: unknown environment variable", "did you mean IONIXSNOW_FILTER_CATEGORIES?"},
		},
		{
			name: "listed with the other problems",
			env: map[string]string{
				"IONIXSNOW_CAP_WINDOW":           "soon",
				"IONIXSNOW_SERVICENOW_PASWORD":   value,
				"IONIXSNOW_IONIX_TOKEN_FIEL":     value,
				"IONIXSNOW_LOG_LEVEL":            "debug",
				"IONIXSNOW_SERVICENOW_TIMEOUT":   "1m",
				"IONIXSNOW_COMPLETELY_ELSEWHERE": value,
			},
			keys: []string{"cap.window", "IONIXSNOW_SERVICENOW_PASWORD", "IONIXSNOW_IONIX_TOKEN_FIEL", "IONIXSNOW_COMPLETELY_ELSEWHERE"},
			text: []string{
				"did you mean IONIXSNOW_SERVICENOW_PASSWORD?",
				"did you mean IONIXSNOW_IONIX_TOKEN_FILE?",
				"IONIXSNOW_COMPLETELY_ELSEWHERE: unknown environment variable: no configuration key has this name; the variable of a key is IONIXSNOW_<SECTION>_<KEY>",
			},
		},
		{
			// ../shared/peers/side-by-side.sh takes the project from IONIXSNOW_SRC, and
			// the ionixsnow processes it starts inherit it.
			name: "the side-by-side benchmark's project directory",
			env:  map[string]string{"IONIXSNOW_SRC": "/work/main"},
		},
		{
			name: "a guessed key that looks like a service link",
			env:  map[string]string{"IONIXSNOW_HTTP_PORT": "9191"},
			keys: []string{"IONIXSNOW_HTTP_PORT"},
		},
		{
			name: "Kubernetes service links pass",
			env: map[string]string{
				"IONIXSNOW_METRICS_SERVICE_HOST":          "10.96.12.7",
				"IONIXSNOW_METRICS_SERVICE_PORT":          "9090",
				"IONIXSNOW_METRICS_SERVICE_PORT_HTTP":     "9090",
				"IONIXSNOW_METRICS_PORT":                  "tcp://10.96.12.7:9090",
				"IONIXSNOW_METRICS_PORT_9090_TCP":         "tcp://10.96.12.7:9090",
				"IONIXSNOW_METRICS_PORT_9090_TCP_PROTO":   "tcp",
				"IONIXSNOW_METRICS_PORT_9090_TCP_PORT":    "9090",
				"IONIXSNOW_METRICS_PORT_9090_TCP_ADDR":    "10.96.12.7",
				"IONIXSNOW_SERVICE_HOST":                  "fd00::12",
				"IONIXSNOW_PORT":                          "udp://[fd00::12]:53",
				"IONIXSNOW_NATS_SERVICE_PORT_NATS_CLIENT": "4222",
				"IONIXSNOW_NATS_URL":                      "nats://127.0.0.1:4222",
			},
		},
		{
			name: "every key and secret file form passes",
			env: map[string]string{
				"IONIXSNOW_CAP_WINDOW":                    "1h",
				"IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE": "", // empty counts as unset
				"IONIXSNOW_NATS_EMBEDDED_TOKEN_FILE":      "",
				"PATH":                                    "/bin",
				"IONIXSNOWISH":                            "not our prefix",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warnings, err := config.LoadEnviron("", environOf(tt.env), config.Needs{})
			if len(tt.keys) == 0 {
				if err != nil {
					t.Fatalf("LoadEnviron = %v, want no problem", err)
				}
			} else {
				wantKeys(t, err, tt.keys...)
				wantText(t, err, tt.text...)
				if strings.Contains(err.Error(), value) {
					t.Errorf("a value is shown:\n%v", err)
				}
			}
			if len(warnings) != tt.warnings {
				t.Errorf("warnings %v, want %d", warnings, tt.warnings)
			}
		})
	}
}

// TestLoadEnvironMatchesLoadFor: the same environment gives the same
// configuration through the list (commands) and through a lookup.
func TestLoadEnvironMatchesLoadFor(t *testing.T) {
	env := map[string]string{"IONIXSNOW_CAP_WINDOW": "30m", "IONIXSNOW_FILTER_CATEGORIES": "DNS,PKI", "IONIXSNOW_LOG_LEVEL": "debug"}
	fromList, _, err := config.LoadEnviron("", append(environOf(env), "IONIXSNOW_CAP_WINDOW=2h"), config.Needs{})
	if err != nil {
		t.Fatal(err)
	}
	fromLookup, err := config.Load("", envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if fromList.String() != fromLookup.String() {
		t.Errorf("LoadEnviron:\n%s\nLoad:\n%s", fromList, fromLookup)
	}
}
