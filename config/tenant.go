package config

import (
	"cmp"
	"fmt"
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
	fileOnly, _, _ := loadTenant(path, nil)
	cfg, warnings, ps := loadTenant(path, vars)
	ps = append(ps, cfg.scrub(tenantEnvProblems(fileOnly, cfg, vars, &warnings))...)
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(rank(a.Key, path), rank(b.Key, path)) })
	return cfg, warnings, ps.err()
}

// tenantEnvProblems checks the secrets a tenant file takes from the environment: the
// variables are named as the deployment's own (the single-tenant form's), so a
// secret given both ways, or one from the environment while the environment names
// another instance or account, is a problem; one taken from it is reported.
func tenantEnvProblems(fileOnly, cfg Config, vars map[string]string, warnings *[]Warning) Problems {
	var ps Problems
	for i := range leaves {
		lf := &leaves[i]
		if !lf.secret || !tenantKeySet[lf.key] || vars[lf.env] == "" && vars[lf.env+"_FILE"] == "" {
			continue
		}
		other, owner := EnvName("servicenow.instance_url"), cfg.ServiceNow.InstanceURL
		if lf.section == "ionix" {
			other, owner = EnvName("ionix.account"), cfg.IONIX.Account
		}
		switch {
		case lf.field(&fileOnly).String() != "":
			ps.add(lf.key, fmt.Sprintf("given in the file and in %s (or %s_FILE); give it once: the environment may hold the single-tenant form's secret, not this tenant's", lf.env, lf.env))
		case vars[other] != "" && !strings.EqualFold(strings.TrimRight(strings.TrimSpace(vars[other]), "/"), owner):
			ps.add(lf.key, fmt.Sprintf("%s would be taken from %s, but %s names another %s than the tenant's: that is the single-tenant form's secret; give the tenant's in the file (or as %s_file)",
				lf.name, lf.env, other, map[bool]string{true: "account", false: "instance"}[lf.section == "ionix"], lf.name))
		default:
			*warnings = append(*warnings, Warning{Key: lf.key, Message: "taken from " + lf.env + " (or " + lf.env + "_FILE)"})
		}
	}
	return ps
}

// loadTenant loads a tenant file with the secrets of vars (nil: none).
func loadTenant(path string, vars map[string]string) (Config, []Warning, Problems) {
	cfg := Default()
	l := &loader{only: tenantKeySet, ignore: tenantShownKeys, files: map[string]fileRef{}, bad: map[string]bool{}}
	l.loadFile(path, &cfg)
	if vars != nil {
		l.loadEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, &cfg)
	}
	l.readSecretFiles(&cfg)
	normalise(&cfg)
	if !l.fileFailed {
		for _, p := range tenantProblems(cfg, Needs{}) {
			if !l.bad[p.Key] {
				l.ps = append(l.ps, p)
			}
		}
	}
	return cfg, l.warnings, cfg.scrub(l.ps)
}

// tenantShownKeys are the top-level keys `tenant get --json` prints besides the
// sections: a tenant file made from that output loads, and they are ignored (the id
// is the command's argument, activation is activate's, the time the store's).
var tenantShownKeys = map[string]bool{"tenant": true, "active": true, "updated_at": true}

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
