package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/secrets"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

// Secrets a tenant command must never print.
const (
	tenantClientSecret = "cs-tenant-Qw71-client-secret"
	tenantPassword     = "pw-tenant-Ux38-password"
)

type tenantFixture struct {
	vars    map[string]string
	dir     string
	keyset  string
	natsURL string
}

func newTenantFixture(t *testing.T) *tenantFixture {
	t.Helper()
	srv := natstest.Start(t)
	dir := t.TempDir()
	f := &tenantFixture{dir: dir, keyset: filepath.Join(dir, "keyset.json"), natsURL: srv.URL()}
	f.vars = map[string]string{
		"IONIXSNOW_NATS_URL":                 srv.URL(),
		"IONIXSNOW_LOG_FORMAT":               "json",
		"IONIXSNOW_SECRETS_KEYSET_FILE":      f.keyset,
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET": tenantClientSecret,
	}
	return f
}

func (f *tenantFixture) file(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs the command line and fails the test if any output shows a secret.
func (f *tenantFixture) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	code, stdout, stderr := runInProcess(t, f.vars, "", args...)
	for _, s := range []string{tenantClientSecret, tenantPassword} {
		if strings.Contains(stdout+stderr, s) {
			t.Errorf("%v shows a secret:\n%s\n%s", args, stdout, stderr)
		}
	}
	return code, stdout, stderr
}

func TestTenantLifecycle(t *testing.T) {
	t.Parallel()
	f := newTenantFixture(t)
	if code, out, errs := f.run(t, "keys", "init", "--out", f.keyset); code != exitOK || !strings.Contains(out, "created keyset") {
		t.Fatalf("keys init: exit %d\n%s%s", code, out, errs)
	}
	pw := f.file(t, "pw", tenantPassword)
	settings := f.file(t, "acme.yaml", `servicenow:
  instance_url: https://acme.service-now.com
  client_id: acme-client
  username: ionix
  password_file: `+pw+`
filter: {categories: [Vulnerability], urgency_threshold: 7}
cap: {max_per_window: 200, window: 1h}
`)
	code, out, errs := f.run(t, "tenant", "put", "Acme", "--file", settings)
	if code != exitOK || !strings.Contains(out, "tenant acme created, inactive") {
		t.Fatalf("tenant put: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = f.run(t, "tenant", "get", "acme", "--json")
	if code != exitOK {
		t.Fatalf("tenant get: exit %d\n%s%s", code, out, errs)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("tenant get --json: %v\n%s", err, out)
	}
	sn, _ := got["servicenow"].(map[string]any)
	if got["tenant"] != "acme" || got["active"] != false || sn["client_secret"] != "set" || sn["password"] != "set" || sn["instance_url"] != "https://acme.service-now.com" {
		t.Errorf("tenant get --json = %s", out)
	}

	code, out, _ = f.run(t, "tenant", "list")
	if code != exitOK || !strings.Contains(out, "acme") || !strings.Contains(out, "https://acme.service-now.com") || !strings.Contains(out, "200/1h0m0s") {
		t.Errorf("tenant list: exit %d\n%s", code, out)
	}

	if code, out, errs = f.run(t, "tenant", "activate", "acme"); code != exitOK || !strings.Contains(out, "activated") {
		t.Fatalf("tenant activate: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ = f.run(t, "tenant", "activate", "acme"); code != exitOK || !strings.Contains(out, "already active") {
		t.Errorf("second activate: exit %d\n%s", code, out)
	}
	// put --activate: the put and the activation button in one step.
	if code, out, errs = f.run(t, "tenant", "put", "beta", "--file", settings, "--activate"); code != exitOK || !strings.Contains(out, "tenant beta created, active") {
		t.Errorf("tenant put --activate: exit %d\n%s%s", code, out, errs)
	}
	if v, err := f.store(t).View(context.Background(), "beta"); err != nil || !v.Active {
		t.Errorf("after put --activate: active %v (%v)", v.Active, err)
	}
	if code, out, errs = f.run(t, "tenant", "delete", "beta", "--yes"); code != exitOK {
		t.Fatalf("tenant delete: exit %d\n%s%s", code, out, errs)
	}

	// A put without the secrets keeps them, and keeps the tenant active.
	delete(f.vars, "IONIXSNOW_SERVICENOW_CLIENT_SECRET")
	again := f.file(t, "acme2.yaml", "servicenow: {instance_url: https://acme.service-now.com, client_id: acme-client, username: ionix}\ncap: {max_per_window: 300}\n")
	code, out, errs = f.run(t, "tenant", "put", "--file", again, "acme") // flags before the id too
	if code != exitOK || !strings.Contains(out, "replaced (active)") || !strings.Contains(out, "kept the stored servicenow.client_secret, servicenow.password") {
		t.Fatalf("second put: exit %d\n%s%s", code, out, errs)
	}
	store := f.store(t)
	st, err := store.Get(context.Background(), "acme")
	if err != nil || st.ServiceNow.ClientSecret != tenantClientSecret || st.ServiceNow.Password != tenantPassword || st.Cap.MaxPerWindow != 300 || !st.Active {
		t.Fatalf("stored after the second put: %v (secrets kept: %v, cap %d, active %v)", err,
			st.ServiceNow.ClientSecret == tenantClientSecret && st.ServiceNow.Password == tenantPassword, st.Cap.MaxPerWindow, st.Active)
	}

	// keys rotate: a new primary, the tenant's secrets sealed again with it.
	before, err := secrets.Load(f.keyset)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = f.run(t, "keys", "rotate")
	if code != exitOK || !strings.Contains(out, "re-encrypted the secrets of 1 tenant") {
		t.Fatalf("keys rotate: exit %d\n%s%s", code, out, errs)
	}
	after, err := secrets.Load(f.keyset)
	if err != nil || after.PrimaryKeyID() == before.PrimaryKeyID() || len(after.KeyIDs()) != 2 {
		t.Fatalf("keyset after rotate: %v, %v", after, err)
	}
	if st, err := f.store(t).Get(context.Background(), "acme"); err != nil || st.ServiceNow.Password != tenantPassword {
		t.Fatalf("Get with the rotated keyset: %v", err)
	}

	if code, out, _ = f.run(t, "tenant", "deactivate", "acme"); code != exitOK || !strings.Contains(out, "deactivated") {
		t.Errorf("tenant deactivate: exit %d\n%s", code, out)
	}
	if code, _, errs = f.run(t, "tenant", "delete", "acme"); code != exitUsage || !strings.Contains(errs, "--yes") {
		t.Errorf("delete without --yes off a terminal: exit %d\n%s", code, errs)
	}
	if code, out, errs = f.run(t, "tenant", "delete", "acme", "--yes"); code != exitOK || !strings.Contains(out, "tenant acme deleted") {
		t.Fatalf("tenant delete: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs = f.run(t, "tenant", "get", "acme"); code != exitFailed || !strings.Contains(errs, "no such tenant") {
		t.Errorf("get after delete: exit %d\n%s", code, errs)
	}
}

func (f *tenantFixture) store(t *testing.T) *tenant.Store {
	t.Helper()
	js := natstest.Connect(t, f.natsURL)
	kv, err := topology.EnsureIntegrations(context.Background(), js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.Load(f.keyset)
	if err != nil {
		t.Fatal(err)
	}
	return tenant.NewStore(kv, keys, secrets.AssociatedData)
}

func TestTenantPutRefusals(t *testing.T) {
	t.Parallel()
	f := newTenantFixture(t)
	if code, _, errs := f.run(t, "keys", "init", "--out", f.keyset); code != exitOK {
		t.Fatal(errs)
	}
	if code, _, errs := f.run(t, "keys", "init", "--out", f.keyset); code != exitUsage || !strings.Contains(errs, "already exists") {
		t.Errorf("second keys init: exit %d\n%s", code, errs)
	}
	before, err := os.ReadFile(f.keyset)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errs := f.run(t, "keys", "init", "--out", f.keyset, "--keep"); code != exitOK || !strings.Contains(out, "kept keyset") {
		t.Errorf("keys init --keep of a keyset: exit %d\n%s%s", code, out, errs)
	}
	if after, _ := os.ReadFile(f.keyset); !bytes.Equal(before, after) {
		t.Error("keys init --keep changed the keyset file")
	}
	notKeys := f.file(t, "not-a-keyset.json", `{"hello": "world"}`)
	if code, _, errs := f.run(t, "keys", "init", "--out", notKeys, "--keep"); code != exitUsage || !strings.Contains(errs, "no usable keyset") {
		t.Errorf("keys init --keep of another file: exit %d\n%s", code, errs)
	}
	fresh := filepath.Join(f.dir, "fresh-keyset.json")
	if code, out, errs := f.run(t, "keys", "init", "--out", fresh, "--keep"); code != exitOK || !strings.Contains(out, "created keyset") {
		t.Errorf("keys init --keep of no file: exit %d\n%s%s", code, out, errs)
	}
	good := f.file(t, "good.yaml", "servicenow: {instance_url: https://acme.service-now.com, client_id: c, username: u, password: p}\n")
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string // added to the fixture's
		want []string          // in stderr
	}{
		{"every problem of the file with its key", []string{"tenant", "put", "acme", "--file", f.file(t, "bad.yaml",
			"servicenow: {instance_url: http://acme.service-now.com, timeout: soon}\nfilter: {urgency_threshold: 0}\nnats: {url: nats://x:4222}\nconsumer: {concurrency: 9}\n")},
			nil, []string{"servicenow.instance_url", "servicenow.timeout", "filter.urgency_threshold", "nats: not part of a tenant's settings", "consumer.concurrency: not part of a tenant's settings"}},
		{"missing credentials", []string{"tenant", "put", "acme", "--file", f.file(t, "nocreds.yaml", "servicenow: {instance_url: https://acme.service-now.com}\n")},
			map[string]string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET": ""}, []string{"servicenow.client_id: required", "servicenow.client_secret: required", "servicenow.username: required"}},
		{"the default tenant", []string{"tenant", "put", "default", "--file", good}, nil, []string{"described by the config file"}},
		{"an id outside the rule", []string{"tenant", "put", "acme.corp", "--file", good}, nil, []string{"[a-z0-9][a-z0-9_-]{0,62}"}},
		{"no file", []string{"tenant", "put", "acme"}, nil, []string{"--file is required"}},
		{"no id", []string{"tenant", "get"}, nil, []string{"a tenant id is required"}},
		{"secrets without a keyset", []string{"tenant", "put", "acme", "--file", good}, map[string]string{"IONIXSNOW_SECRETS_KEYSET_FILE": ""}, []string{"keys init"}},
		{"a keyset file that is missing", []string{"tenant", "list"}, map[string]string{"IONIXSNOW_SECRETS_KEYSET_FILE": filepath.Join(f.dir, "nope.json")}, []string{"secrets.keyset_file", "no keyset file"}},
		{"clear of a field that is not a secret", []string{"tenant", "put", "acme", "--file", good, "--clear", "servicenow.instance_url"}, nil, []string{"not a secret field"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := *f
			g.vars = map[string]string{}
			for k, v := range f.vars {
				g.vars[k] = v
			}
			for k, v := range tc.vars {
				if v == "" {
					delete(g.vars, k)
				} else {
					g.vars[k] = v
				}
			}
			code, out, errs := g.run(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitUsage, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
		})
	}
	if l, err := f.store(t).List(context.Background()); err != nil || len(l) != 0 {
		t.Fatalf("a refused put stored something: %v, %v", l, err)
	}
	if code, _, errs := f.run(t, "tenant", "get", "default"); code != exitFailed || !strings.Contains(errs, "described by the config file") {
		t.Errorf("tenant get default: exit %d\n%s", code, errs)
	}
}

// TestTenantCommandsOverACorruptDocument: a tenant whose stored settings are not
// readable is listed as such (the others still are), and can be put over or deleted.
func TestTenantCommandsOverACorruptDocument(t *testing.T) {
	t.Parallel()
	f := newTenantFixture(t)
	if code, _, errs := f.run(t, "keys", "init", "--out", f.keyset); code != exitOK {
		t.Fatal(errs)
	}
	good := f.file(t, "good.yaml", "servicenow: {instance_url: https://acme.service-now.com, client_id: c, username: u, password: p}\n")
	if code, out, errs := f.run(t, "tenant", "put", "acme", "--file", good); code != exitOK {
		t.Fatalf("put: %d\n%s%s", code, out, errs)
	}
	js := natstest.Connect(t, f.natsURL)
	kv, err := topology.EnsureIntegrations(context.Background(), js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "broken", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := f.run(t, "tenant", "list")
	if code != exitOK || !strings.Contains(out, "acme") || !strings.Contains(out, "broken") || !strings.Contains(out, "unreadable settings") {
		t.Errorf("tenant list: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := f.run(t, "tenant", "put", "broken", "--file", good); code != exitOK {
		t.Errorf("put over the corrupt document: exit %d\n%s%s", code, out, errs)
	}
	if _, err := kv.Put(context.Background(), "broken", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := f.run(t, "tenant", "delete", "broken", "--yes"); code != exitOK {
		t.Errorf("delete of the corrupt document: exit %d\n%s%s", code, out, errs)
	}
}
