package config_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/config"
)

// TestDefaultMatchesSpec pins Default() to the table of SPEC §7.
func TestDefaultMatchesSpec(t *testing.T) {
	want := config.Config{
		NATS: config.NATS{
			URL: "", CredsFile: "", EmbeddedListen: "127.0.0.1:4222", StoreDir: "./data/nats",
			Stream: "IONIX_ACTION_ITEMS", Consumer: "servicenow", Replicas: 1,
		},
		ServiceNow: config.ServiceNow{
			ImportTable: "u_ionix_action_item", FieldPrefix: "u_", Timeout: 30 * time.Second,
		},
		Filter: config.Filter{Categories: nil, UrgencyThreshold: 1},
		Cap:    config.Cap{MaxPerWindow: 1000, Window: time.Hour, Pacing: config.PacingEven},
		Consumer: config.Consumer{Concurrency: 4, ResolveOnClose: false, MaxBackoff: 5 * time.Minute,
			AckWait: 2 * time.Minute, MaxDeliver: 0, MaxAckPending: 1000, DrainTimeout: 30 * time.Second, ProcessConcurrency: 64},
		IONIX:   config.IONIX{APIURL: "https://api.portal.ionix.io", PollInterval: 15 * time.Minute},
		HTTP:    config.HTTP{Listen: "127.0.0.1:9090"},
		Log:     config.Log{Level: "info", Format: "auto"},
		Secrets: config.Secrets{KeysetFile: ""},
	}
	if got := config.Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() =\n%#v\nwant\n%#v", got, want)
	}
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	// Publish needs nothing beyond the defaults.
	if err := config.Default().ValidateFor(config.Needs{}); err != nil {
		t.Fatalf("Default().ValidateFor(Needs{}) = %v", err)
	}
	cfg, err := config.Load("", nil)
	if err != nil || !reflect.DeepEqual(cfg, want) {
		t.Fatalf("Load(\"\", nil) = %v, %v; want the defaults", cfg, err)
	}
}

const examplePath = "ionixsnow.example.yaml"

func TestExampleFile(t *testing.T) {
	t.Run("documents exactly the defaults", func(t *testing.T) {
		cfg, err := config.Load(examplePath, envOf(nil))
		if err != nil {
			t.Fatalf("Load(example) = %v", err)
		}
		if !reflect.DeepEqual(cfg, config.Default()) {
			t.Fatalf("example differs from Default():\n%v\nwant\n%v", cfg, config.Default())
		}
	})
	t.Run("loads and validates with placeholder credentials", func(t *testing.T) {
		cfg, err := config.LoadFor(examplePath, envOf(validCreds), config.Needs{ServiceNow: true, IONIX: true})
		if err != nil {
			t.Fatalf("LoadFor(example) = %v", err)
		}
		if err := cfg.ValidateFor(config.Needs{ServiceNow: true, IONIX: true}); err != nil {
			t.Fatalf("ValidateFor = %v", err)
		}
	})
	t.Run("has every key with a comment, and every secret's _file form", func(t *testing.T) {
		data, err := os.ReadFile(examplePath)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		section := ""
		found := map[string]bool{}
		for i, line := range lines {
			if m := regexp.MustCompile(`^(\w+):\s*$`).FindStringSubmatch(line); m != nil {
				section = m[1]
				continue
			}
			m := regexp.MustCompile(`^  (#\s*)?(\w+):`).FindStringSubmatch(line)
			if m == nil {
				continue
			}
			key := section + "." + m[2]
			if m[1] != "" { // a commented line: only the _file form of a secret
				if base, ok := strings.CutSuffix(key, "_file"); ok && config.IsSecret(base) {
					found[key] = true
				}
				continue
			}
			found[key] = true
			// A comment within the three lines above (keys of one credential share one).
			commented := false
			for j := max(0, i-3); j < i; j++ {
				if strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
					commented = true
				}
			}
			if !commented {
				t.Errorf("line %d: key %s has no comment above it", i+1, key)
			}
		}
		for _, key := range config.Keys() {
			if !found[key] {
				t.Errorf("key %s missing", key)
			}
			if config.IsSecret(key) && !found[key+"_file"] {
				t.Errorf("secret %s lacks a commented %s_file line", key, key)
			}
		}
		if len(found) != len(config.Keys())+len(config.SecretKeys()) {
			t.Errorf("example has %d keys, want %d", len(found), len(config.Keys())+len(config.SecretKeys()))
		}
	})
}
