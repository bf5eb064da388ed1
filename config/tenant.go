package config

import (
	"cmp"
	"slices"
	"strings"
)

// notTenant is the problem of a key or section a tenant's settings cannot hold.
const notTenant = "not part of a tenant's settings (SPEC §9); it belongs in the deployment's config file (--config)"

// TenantKeys are the keys of one tenant's settings (SPEC §9): the per-customer part of
// the configuration — its ServiceNow instance and credentials, its filter, its cap,
// resolve_on_close and its IONIX API. Everything else belongs to the deployment.
var TenantKeys = []string{
	"servicenow.instance_url", "servicenow.client_id", "servicenow.client_secret",
	"servicenow.username", "servicenow.password", "servicenow.refresh_token",
	"servicenow.import_table", "servicenow.field_prefix", "servicenow.timeout",
	"servicenow.allow_insecure_http",
	"filter.categories", "filter.urgency_threshold",
	"cap.max_per_window", "cap.window",
	"consumer.resolve_on_close",
	"ionix.api_url", "ionix.account", "ionix.token",
}

var tenantKeySet = func() map[string]bool {
	m := make(map[string]bool, len(TenantKeys))
	for _, k := range TenantKeys {
		if !slices.ContainsFunc(leaves, func(l leaf) bool { return l.key == k }) {
			panic("config: tenant key " + k + " is not a key")
		}
		m[k] = true
	}
	return m
}()

// IsTenantKey reports whether key is one of TenantKeys.
func IsTenantKey(key string) bool { return tenantKeySet[key] }

// LoadTenant reads a tenant's settings file (`ionixsnow tenant put T --file F`): YAML or
// JSON with the sections of the config file, limited to TenantKeys. It returns Default()
// with the file's keys set, the secrets also taken from the environment
// (IONIXSNOW_<SECTION>_<KEY> and <KEY>_FILE, given as NAME=value entries) and from
// <key>_file entries. Any other key or section is a problem naming it, as is every
// inconsistency ValidateTenant finds short of the required credentials: a put may keep
// the secrets it does not mention, so the caller checks those after the merge.
func LoadTenant(path string, environ []string) (Config, []Warning, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if _, dup := vars[name]; !dup {
			vars[name] = value
		}
	}
	cfg := Default()
	l := &loader{only: tenantKeySet, files: map[string]fileRef{}, bad: map[string]bool{}}
	l.loadFile(path, &cfg)
	l.loadEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, &cfg)
	l.readSecretFiles(&cfg)
	normalise(&cfg)
	if !l.fileFailed {
		for _, p := range tenantProblems(cfg, Needs{}) {
			if !l.bad[p.Key] {
				l.ps = append(l.ps, p)
			}
		}
	}
	l.ps = cfg.scrub(l.ps)
	slices.SortStableFunc(l.ps, func(a, b Problem) int { return cmp.Compare(rank(a.Key, path), rank(b.Key, path)) })
	return cfg, l.warnings, l.ps.err()
}

// ValidateTenant checks the tenant keys of c as Validate checks a configuration, with
// the credentials consume needs (instance_url, client_id, client_secret, and
// username+password or refresh_token) required. Problems of other keys are not its
// business: they belong to the deployment.
func ValidateTenant(c Config) error { return c.scrub(tenantProblems(c, Needs{ServiceNow: true})).err() }

func tenantProblems(c Config, n Needs) Problems {
	var out Problems
	for _, p := range c.problems(n) {
		if tenantKeySet[p.Key] {
			out = append(out, p)
		}
	}
	return out
}
