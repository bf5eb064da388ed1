package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/config"
)

func writeTenantFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTenant(t *testing.T) {
	secretFile := writeTenantFile(t, "pw", "from-a-file-Pa55\n")
	for _, tc := range []struct {
		name    string
		file    string // a YAML or JSON body
		json    bool
		environ []string
		// keys with a problem, in order; none: it loads
		problems []string
		check    func(t *testing.T, c config.Config)
	}{
		{
			name: "every tenant key",
			file: `servicenow: {instance_url: "https://acme.service-now.com/", client_id: cid, client_secret: cs, username: u, password: p,
  import_table: x_acme_items, field_prefix: "u_", timeout: 45s, allow_insecure_http: false}
filter: {categories: [Vulnerability, PKI], urgency_threshold: 7}
cap: {max_per_window: 200, window: 30m}
consumer: {resolve_on_close: true}
ionix: {api_url: "https://api.portal.ionix.io", account: Acme, token: tok}`,
			check: func(t *testing.T, c config.Config) {
				sn := c.ServiceNow
				if sn.InstanceURL != "https://acme.service-now.com" || sn.ClientID != "cid" || sn.ClientSecret != "cs" || sn.Password != "p" ||
					sn.ImportTable != "x_acme_items" || sn.Timeout != 45*time.Second {
					t.Errorf("servicenow = %+v", sn)
				}
				if len(c.Filter.Categories) != 2 || c.Filter.UrgencyThreshold != 7 || c.Cap.MaxPerWindow != 200 || c.Cap.Window != 30*time.Minute ||
					!c.Consumer.ResolveOnClose || c.IONIX.Account != "Acme" || c.IONIX.Token != "tok" {
					t.Errorf("settings = %+v", c)
				}
			},
		},
		{
			name: "JSON",
			json: true,
			file: `{"servicenow":{"instance_url":"https://acme.service-now.com","client_id":"cid"},"cap":{"max_per_window":50,"window":"10m"}}`,
			check: func(t *testing.T, c config.Config) {
				if c.ServiceNow.ClientID != "cid" || c.Cap.MaxPerWindow != 50 || c.Cap.Window != 10*time.Minute {
					t.Errorf("settings = %+v", c)
				}
			},
		},
		{
			name: "defaults where the file is silent",
			file: `servicenow: {instance_url: "https://acme.service-now.com"}`,
			check: func(t *testing.T, c config.Config) {
				if c.Cap.MaxPerWindow != 1000 || c.Cap.Window != time.Hour || c.Filter.UrgencyThreshold != 1 || c.ServiceNow.ImportTable != "u_ionix_action_item" {
					t.Errorf("defaults = %+v", c)
				}
			},
		},
		{
			name:     "deployment sections and keys are refused, every one",
			file:     "nats: {url: \"nats://x:4222\"}\nconsumer: {concurrency: 8, resolve_on_close: true}\nservicenow: {category_overrides: {DNS: Net}}\nlog: {level: debug}\n",
			problems: []string{"nats", "servicenow.category_overrides", "consumer.concurrency", "log"},
		},
		{
			name:     "unknown keys and bad values, every one",
			file:     "servicenow: {instanc_url: \"https://a.service-now.com\", timeout: soon}\nfilter: {urgency_threshold: 11}\ncap: {max_per_window: 0}\n",
			problems: []string{"servicenow.timeout", "servicenow.instanc_url", "filter.urgency_threshold", "cap.max_per_window"},
		},
		{
			name:     "plain http for a real instance",
			file:     `servicenow: {instance_url: "http://acme.service-now.com"}`,
			problems: []string{"servicenow.instance_url"},
		},
		{
			name:    "secrets from the environment and from files; other variables ignored",
			file:    "servicenow: {instance_url: \"https://acme.service-now.com\", username: u, password_file: " + secretFile + "}\n",
			environ: []string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET=env-secret", "IONIXSNOW_SERVICENOW_INSTANCE_URL=https://acme.service-now.com/", "IONIXSNOW_CAP_MAX_PER_WINDOW=5"},
			check: func(t *testing.T, c config.Config) {
				if c.ServiceNow.ClientSecret != "env-secret" || c.ServiceNow.Password != "from-a-file-Pa55" {
					t.Errorf("secrets not read from the environment and the file")
				}
				if c.ServiceNow.InstanceURL != "https://acme.service-now.com" || c.Cap.MaxPerWindow != 1000 {
					t.Errorf("a non-secret variable was read: %s, cap %d", c.ServiceNow.InstanceURL, c.Cap.MaxPerWindow)
				}
			},
		},
		{
			name:     "a secret from the environment while it names another instance",
			file:     "servicenow: {instance_url: \"https://acme.service-now.com\", client_id: c}\n",
			environ:  []string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET=the-single-tenants", "IONIXSNOW_SERVICENOW_INSTANCE_URL=https://single.service-now.com"},
			problems: []string{"servicenow.client_secret"},
		},
		{
			name:     "a secret in the file and in the environment",
			file:     "servicenow: {instance_url: \"https://acme.service-now.com\", client_secret: from-the-file}\n",
			environ:  []string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET=from-the-env"},
			problems: []string{"servicenow.client_secret"},
		},
		{
			name:     "an IONIX token from the environment of another account",
			file:     "ionix: {account: acme}\n",
			environ:  []string{"IONIXSNOW_IONIX_TOKEN=tok", "IONIXSNOW_IONIX_ACCOUNT=single"},
			problems: []string{"ionix.token"},
		},
		{
			name: "what tenant get --json prints",
			json: true,
			file: `{"tenant":"acme","servicenow":{"instance_url":"https://acme.service-now.com","client_id":"c","client_secret":"set","username":"u","password":"set","import_table":"u_ionix_action_item","field_prefix":"u_","timeout":"30s","allow_insecure_http":false},"filter":{"categories":null,"urgency_threshold":1},"cap":{"max_per_window":1000,"window":"1h0m0s"},"consumer":{"resolve_on_close":false},"ionix":{"api_url":"https://api.portal.ionix.io","account":"acme"},"active":true,"updated_at":"2026-12-02T09:00:00Z"}`,
			check: func(t *testing.T, c config.Config) {
				if c.ServiceNow.ClientSecret != "set" || c.Cap.Window != time.Hour {
					t.Errorf("settings = %+v", c)
				}
			},
		},
		{
			name:     "a secret file that is missing",
			file:     "servicenow: {client_secret_file: /nonexistent/secret}\n",
			problems: []string{"servicenow.client_secret_file"},
		},
		{
			name:     "the deployment's secret file form is refused",
			file:     "nats: {embedded_token_file: /run/secrets/t}\n",
			problems: []string{"nats"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "tenant.yaml"
			if tc.json {
				name = "tenant.json"
			}
			cfg, _, err := config.LoadTenant(writeTenantFile(t, name, tc.file), tc.environ)
			ps := config.AsProblems(err)
			if err != nil && ps == nil {
				t.Fatalf("LoadTenant error is not Problems: %v", err)
			}
			if got := strings.Join(ps.Keys(), " "); got != strings.Join(tc.problems, " ") {
				t.Fatalf("problems at %q, want %q:\n%v", got, strings.Join(tc.problems, " "), err)
			}
			for _, p := range ps {
				if strings.Contains(p.Message, "deployment") != (p.Key == "nats" || p.Key == "log" || p.Key == "consumer.concurrency" || p.Key == "servicenow.category_overrides") {
					t.Errorf("%s: %s", p.Key, p.Message)
				}
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func TestValidateTenantNeedsCredentials(t *testing.T) {
	c := config.Default()
	c.ServiceNow.InstanceURL = "https://acme.service-now.com"
	c.NATS.Replicas = 7 // the deployment's problem, not the tenant's
	err := config.ValidateTenant(c)
	if got := strings.Join(config.AsProblems(err).Keys(), " "); got != "servicenow.client_id servicenow.client_secret servicenow.username" {
		t.Fatalf("ValidateTenant problems at %q:\n%v", got, err)
	}
	c.ServiceNow.ClientID, c.ServiceNow.ClientSecret, c.ServiceNow.RefreshToken = "cid", "cs", "rt"
	if err := config.ValidateTenant(c); err != nil {
		t.Fatalf("ValidateTenant = %v", err)
	}
}

func TestTenantKeysAreKeys(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range config.Keys() {
		keys[k] = true
	}
	for _, k := range config.TenantKeys {
		if !keys[k] || !config.IsTenantKey(k) {
			t.Errorf("%s", k)
		}
	}
	for _, k := range []string{"nats.url", "consumer.concurrency", "secrets.keyset_file", "servicenow.category_overrides"} {
		if config.IsTenantKey(k) {
			t.Errorf("%s is a tenant key", k)
		}
	}
}
