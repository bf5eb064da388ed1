package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/config"
)

// The configuration's own description of its environment variables, and the
// configuration an invocation loads.

// configEnvNames returns every environment variable the loader reads, found by
// loading with a lookup that records what it is asked for, and the subset that
// name a secret's file (IONIXSNOW_..._FILE).
func configEnvNames(t *testing.T) (all, secretFiles map[string]bool) {
	t.Helper()
	all = map[string]bool{}
	_, _ = config.LoadFor("", func(k string) (string, bool) {
		all[k] = true
		return "", false
	}, config.Needs{})
	if len(all) == 0 {
		t.Fatal("config.LoadFor asked for no environment variable")
	}
	secretFiles = map[string]bool{}
	for name, key := range secretFileEnvNames() {
		if !all[name] {
			t.Fatalf("the loader does not read %s for the secret %s", name, key)
		}
		secretFiles[name] = true
	}
	return all, secretFiles
}

// secretFileEnvNames returns the variables that name a secret's file
// (IONIXSNOW_..._FILE), each with the key of its secret.
func secretFileEnvNames() map[string]string {
	names := map[string]string{}
	for _, key := range config.SecretKeys() {
		names[config.EnvName(key)+"_FILE"] = key
	}
	return names
}

// needsOf is what the configuration must hold for the command (the Needs its
// run function passes to loadConfig).
func needsOf(args []string) config.Needs {
	path := commandPath(args)
	if len(path) == 0 {
		return config.Needs{}
	}
	switch path[0] {
	case "consume", "doctor":
		return config.Needs{ServiceNow: true}
	case "replay":
		return config.Needs{ServiceNow: !hasFlag(args, "dry-run")}
	case "poll":
		return config.Needs{IONIX: true}
	}
	return config.Needs{}
}

// loadConfigOf loads the configuration an invocation runs with: its --config file
// (as mounted), its environment, and its secret files (as mounted).
func loadConfigOf(t *testing.T, inv deployInvocation) (config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := ""
	if p, ok := flagValue(inv.args, "config"); ok {
		content, err := inv.read(p)
		if err != nil {
			return config.Config{}, fmt.Errorf("--config %s: %v", p, err)
		}
		cfgPath = filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfgPath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secretFileEnv := secretFileEnvNames()
	env := map[string]string{}
	for name, v := range inv.env {
		env[name] = v
		if _, ok := secretFileEnv[name]; !ok {
			continue
		}
		content, err := inv.read(v)
		if err != nil {
			return config.Config{}, fmt.Errorf("%s=%s: %v", name, v, err)
		}
		local := filepath.Join(dir, strings.ToLower(name))
		if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		env[name] = local
	}
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	needs := needsOf(inv.args)
	if inv.subcommand() == "consume" {
		// As consume decides: the single-tenant form is needed unless the
		// configuration names a keyset (tenants) and no instance.
		peek, _ := config.LoadFor(cfgPath, lookup, config.Needs{})
		needs.ServiceNow = peek.ServiceNow.InstanceURL != "" || peek.Secrets.KeysetFile == ""
	}
	return config.LoadFor(cfgPath, lookup, needs)
}

// checkLoadConfig loads the configuration of an invocation (loadConfigOf) and
// reports it if the command would refuse it; ok is false then.
func checkLoadConfig(t *testing.T, inv deployInvocation) (cfg config.Config, ok bool) {
	t.Helper()
	cfg, err := loadConfigOf(t, inv)
	if err != nil {
		t.Errorf("%s: `ionixsnow %s` would refuse its configuration:\n%v", inv.where, strings.Join(inv.args, " "), err)
		return cfg, false
	}
	return cfg, true
}

// isLoopback tells whether a host of a URL or listen address is this machine (this
// container, this pod).
func isLoopback(host string) bool {
	return host == "localhost" || net.ParseIP(host).IsLoopback()
}
