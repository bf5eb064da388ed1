package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// customer is one tenant's ServiceNow instance in a process-level test.
type customer struct {
	id, secret, password string
	sim                  *emulator.Server
	url                  string
}

func newCustomer(t *testing.T, id string) *customer {
	t.Helper()
	c := &customer{id: id, secret: "cs-" + id + "-9f2e71", password: "pw-" + id + "-4c8d02"}
	c.sim = emulator.New(emulator.Options{ClientID: id + "-client", ClientSecret: c.secret, Username: "svc." + id, Password: c.password})
	srv := httptest.NewServer(c.sim)
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// settingsFile writes the tenant's settings (its secrets only in the environment of
// the put, as an operator would pass them).
func (c *customer) settingsFile(t *testing.T, dir string, threshold float64, more ...string) string {
	t.Helper()
	p := filepath.Join(dir, c.id+".yaml")
	body := fmt.Sprintf("servicenow: {instance_url: %q, client_id: %q, username: %q}\nfilter: {urgency_threshold: %g}\n",
		c.url, c.id+"-client", "svc."+c.id, threshold) + strings.Join(more, "")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// items writes an NDJSON file of items of the tenant: ids shared between tenants (so
// that a mix-up of ledgers or de-duplication shows), titles naming the tenant.
func itemsFile(t *testing.T, dir, name, tenantID string, urgency float64, ids ...string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		it := map[string]any{"id": id, "title": tenantID + ": open port on " + id, "type": "Vulnerability", "urgency": urgency,
			"first_opened_at": "2026-11-20T10:15:00Z", "asset": id + ".example.com"}
		j, _ := json.Marshal(it)
		b.Write(j)
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// titlesOf are the short descriptions of the instance's incidents.
func titlesOf(sim *emulator.Server) []string {
	var out []string
	for _, in := range sim.Incidents() {
		out = append(out, in.ShortDescription)
	}
	return out
}

// deployment is what the process-level tenant tests share: a NATS server, a keyset
// made with `keys init`, and the environment every command runs with.
type deployment struct {
	t       *testing.T
	dir     string
	keyset  string
	natsURL string
	env     []string
}

func newDeployment(t *testing.T, env ...string) *deployment {
	t.Helper()
	ns, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	d := &deployment{t: t, dir: t.TempDir(), natsURL: ns.URL()}
	d.keyset = filepath.Join(d.dir, "keyset.json")
	d.env = append([]string{"IONIXSNOW_NATS_URL=" + ns.URL(), "IONIXSNOW_SECRETS_KEYSET_FILE=" + d.keyset,
		"IONIXSNOW_LOG_FORMAT=json", "IONIXSNOW_HTTP_LISTEN=127.0.0.1:0"}, env...)
	d.mustRun(d.env, "keys", "init", "--out", d.keyset)
	return d
}

// mustRun runs the binary with env and fails the test unless it exits 0.
func (d *deployment) mustRun(env []string, args ...string) string {
	d.t.Helper()
	out, code := runBinary(d.t, env, args...)
	if code != exitOK {
		d.t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// with is the deployment's environment and more.
func (d *deployment) with(more ...string) []string {
	return append(append([]string{}, d.env...), more...)
}

// addTenant puts the customer's settings file (its secrets given as an operator
// would, in the environment of the put) and activates it.
func (d *deployment) addTenant(c *customer, settings string) {
	d.t.Helper()
	d.mustRun(d.with("IONIXSNOW_SERVICENOW_CLIENT_SECRET="+c.secret, "IONIXSNOW_SERVICENOW_PASSWORD="+c.password),
		"tenant", "put", c.id, "--file", settings)
	d.mustRun(d.env, "tenant", "activate", c.id)
}

// TestTenantsServedByOneConsume: one consume serves the single-tenant form and two
// tenants of the bucket, each on its own instance; items with the same ids reach only
// their own tenant's instance; a tenant deactivated while consume runs stops sending
// and keeps its backlog, which goes out once it is activated again; changed settings
// take effect without a restart; a deleted tenant sends no more.
func TestTenantsServedByOneConsume(t *testing.T) {
	t.Parallel()
	dep := newDeployment(t)
	dir, base, mustRun := dep.dir, dep.env, dep.mustRun
	single, acme, globex := newCustomer(t, "single"), newCustomer(t, "acme"), newCustomer(t, "globex")
	singleEnv := dep.with(
		"IONIXSNOW_SERVICENOW_INSTANCE_URL="+single.url, "IONIXSNOW_SERVICENOW_CLIENT_ID=single-client",
		"IONIXSNOW_SERVICENOW_CLIENT_SECRET="+single.secret, "IONIXSNOW_SERVICENOW_USERNAME=svc.single",
		"IONIXSNOW_SERVICENOW_PASSWORD="+single.password)
	for _, c := range []*customer{acme, globex} {
		dep.addTenant(c, c.settingsFile(t, dir, 1))
	}
	if out, code := runBinary(t, base, "tenant", "test", "acme"); code != exitOK {
		t.Fatalf("tenant test acme: exit %d\n%s", code, out)
	}
	shared := []string{"ai-1", "ai-2", "ai-3"}
	mustRun(base, "publish", "--file", itemsFile(t, dir, "single.ndjson", "single", 8, shared...))
	for _, c := range []*customer{acme, globex} {
		if out := mustRun(base, "publish", "--tenant", c.id, "--file", itemsFile(t, dir, c.id+".ndjson", c.id, 8, shared...)); !strings.Contains(out, "published 3, duplicate 0") {
			t.Fatalf("publish --tenant %s: the same ids as another tenant's were taken for duplicates:\n%s", c.id, out)
		}
	}

	consume := startConsume(t, "", singleEnv)
	every := []*customer{single, acme, globex}
	waitTitles := func(c *customer, want int) {
		t.Helper()
		testkit.WaitForDiag(t, 20*time.Second, fmt.Sprintf("%d incidents at %s", want, c.id),
			func() bool { return len(c.sim.Incidents()) >= want },
			func() string {
				return fmt.Sprintf("%s has %q; consume output:\n%s", c.id, titlesOf(c.sim), consume.logs.String())
			})
	}
	for _, c := range every {
		waitTitles(c, 3)
	}
	checkOwn := func() {
		t.Helper()
		for _, c := range every {
			for _, title := range titlesOf(c.sim) {
				if !strings.HasPrefix(title, c.id+":") {
					t.Errorf("%s's instance holds another tenant's item %q", c.id, title)
				}
			}
		}
	}
	checkOwn()
	if out, code := runBinary(t, base, "tenant", "test", "acme"); code != exitOK || !strings.Contains(out, "servicenow_acme:") {
		t.Errorf("tenant test acme checks its own durable consumer servicenow_acme: exit %d\n%s", code, out)
	}

	// /metrics labels every tenant's series, the single-tenant form's as "default".
	listen := regexp.MustCompile(`"listen":"(127\.0\.0\.1:\d+)"`).FindStringSubmatch(consume.logs.String())
	if listen == nil {
		t.Fatalf("no metrics listener in the output:\n%s", consume.logs.String())
	}
	testkit.WaitForDiag(t, 10*time.Second, "per-tenant metrics", func() bool {
		body := scrape(t, "http://"+listen[1]+"/metrics")
		for _, want := range []string{`ionixsnow_items_sent_total{status="inserted",tenant="acme"} 3`,
			`ionixsnow_items_sent_total{status="inserted",tenant="globex"} 3`, `ionixsnow_items_sent_total{status="inserted",tenant="default"} 3`,
			`ionixsnow_backlog{tenant="acme",urgency="unsorted"} 0`, `ionixsnow_consumer_paused{tenant="globex"} 0`, `ionixsnow_budget_remaining{tenant="acme"}`} {
			if !strings.Contains(body, want) {
				return false
			}
		}
		return true
	}, func() string { return scrape(t, "http://"+listen[1]+"/metrics") })

	// Deactivated while consume runs: globex's new items wait; acme's go on.
	mustRun(base, "tenant", "deactivate", "globex")
	testkit.WaitForDiag(t, 10*time.Second, "consume stops globex", func() bool {
		return strings.Contains(consume.logs.String(), `"tenant":"globex","why":"deactivated"`)
	}, func() string { return consume.logs.String() })
	mustRun(base, "publish", "--tenant", "globex", "--file", itemsFile(t, dir, "globex2.ndjson", "globex", 8, "ai-4", "ai-5"))
	mustRun(base, "publish", "--tenant", "acme", "--file", itemsFile(t, dir, "acme2.ndjson", "acme", 8, "ai-4"))
	waitTitles(acme, 4)
	if n := len(globex.sim.Incidents()); n != 3 {
		t.Fatalf("globex, deactivated, got %d incidents; want its 3 from before", n)
	}
	mustRun(base, "tenant", "activate", "globex")
	waitTitles(globex, 5)

	// Settings changed while consume runs: acme's threshold rises to 9.
	mustRun(base, "tenant", "put", "acme", "--file", acme.settingsFile(t, dir, 9))
	testkit.WaitForDiag(t, 10*time.Second, "consume restarts acme with the new settings", func() bool {
		return strings.Count(consume.logs.String(), `"tenant":"acme","why":"settings changed"`) >= 1
	}, func() string { return consume.logs.String() })
	mustRun(base, "publish", "--tenant", "acme", "--file", itemsFile(t, dir, "acme3.ndjson", "acme", 8, "low-1"))
	mustRun(base, "publish", "--tenant", "acme", "--file", itemsFile(t, dir, "acme4.ndjson", "acme", 9.5, "high-1"))
	waitTitles(acme, 5)
	for _, title := range titlesOf(acme.sim) {
		if strings.Contains(title, "low-1") {
			t.Errorf("an item below acme's new threshold was sent: %q", title)
		}
	}

	// Deleted: no more sends for it.
	mustRun(base, "tenant", "delete", "globex", "--yes")
	testkit.WaitForDiag(t, 10*time.Second, "consume stops globex", func() bool {
		return strings.Contains(consume.logs.String(), `"tenant":"globex","why":"deleted"`)
	}, func() string { return consume.logs.String() })
	mustRun(base, "publish", "--tenant", "globex", "--file", itemsFile(t, dir, "globex3.ndjson", "globex", 8, "ai-6"))
	mustRun(base, "publish", "--file", itemsFile(t, dir, "single2.ndjson", "single", 8, "ai-6"))
	waitTitles(single, 4)
	if n := len(globex.sim.Incidents()); n != 5 {
		t.Errorf("globex, deleted, has %d incidents; want 5", n)
	}
	checkOwn()

	// Dead letters: each tenant's apart.
	bad := func(name, id string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(`{"id":"`+id+`","title":"bad urgency","type":"DNS","urgency":{"urgency":"high"}}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// publish refuses what it cannot decode; a message published as is reaches the
	// consumer, which dead-letters it.
	nc := natstest.Connect(t, dep.natsURL)
	for subject, id := range map[string]string{"ionix.action_items.opened.dns": "bad-single", "ionix.action_items.acme.opened.dns": "bad-acme"} {
		m := nats.NewMsg(subject)
		m.Header.Set("Ionix-Event", "opened")
		m.Data, _ = os.ReadFile(bad(id+".json", id))
		if _, err := nc.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	letters := func(tenantID string) []map[string]any {
		t.Helper()
		var out []map[string]any
		raw, code := runBinary(t, base, "dlq", "list", "--json", "--tenant", tenantID)
		if code != exitOK || json.Unmarshal([]byte(raw), &out) != nil {
			t.Fatalf("dlq list --tenant %s: exit %d\n%s", tenantID, code, raw)
		}
		return out
	}
	testkit.WaitForDiag(t, 20*time.Second, "a dead letter for acme and one for the single-tenant form", func() bool {
		return len(letters("acme")) == 1 && len(letters("default")) == 1
	}, func() string { return consume.logs.String() })
	if l := letters("acme"); l[0]["id"] != "bad-acme" {
		t.Errorf("acme's dead letters: %v", l)
	}
	if l := letters("globex"); len(l) != 0 {
		t.Errorf("globex's dead letters: %v", l)
	}
	mustRun(base, "dlq", "purge", "--tenant", "acme", "--yes")
	if la, ld := letters("acme"), letters("default"); len(la) != 0 || len(ld) != 1 || ld[0]["id"] != "bad-single" {
		t.Errorf("after purging acme's: acme %v, single %v", la, ld)
	}

	consume.stop(t)
	logs := consume.logs.String()
	for _, c := range every {
		for _, s := range []string{c.secret, c.password} {
			if strings.Contains(logs, s) {
				t.Errorf("consume's output shows %s's secret", c.id)
			}
		}
		for _, in := range c.sim.Incidents() {
			if in.Inserts != 1 {
				t.Errorf("%s: %s inserted %d times", c.id, in.Number, in.Inserts)
			}
		}
	}
}

// importTimes are the times the instance received an import of each correlation id,
// in order.
func importTimes(sim *emulator.Server) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, r := range sim.Requests() {
		if r.Method == "POST" && strings.Contains(r.Path, "/api/now/import/") {
			id := r.Fields["u_correlation_id"]
			out[id] = append(out[id], r.At)
		}
	}
	return out
}

// maxInWindow is the most import requests the instance received within any span of
// window.
func maxInWindow(sim *emulator.Server, window time.Duration) int {
	var at []time.Time
	for _, r := range sim.Requests() {
		if r.Method == "POST" && strings.Contains(r.Path, "/api/now/import/") {
			at = append(at, r.At)
		}
	}
	most := 0
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < window; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// TestTenantIsolation: one consume, four tenants. One tenant's instance is down for
// 30 s and another's answers 403; the third's items keep arriving at the latency
// they had before, and the fourth's cap holds exactly under a burst. When the outage
// ends, the first tenant's items arrive.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	// Pacing would space the steady tenant's items 3.6 s apart at its cap: the window
	// alone, as before SPEC §10, keeps this about isolation.
	dep := newDeployment(t, "IONIXSNOW_CONSUMER_MAX_BACKOFF=2s", "IONIXSNOW_CAP_PACING=burst")
	dir, base := dep.dir, dep.env
	mustRun := func(args ...string) { t.Helper(); dep.mustRun(base, args...) }
	down, denied, steady, capped := newCustomer(t, "down"), newCustomer(t, "denied"), newCustomer(t, "steady"), newCustomer(t, "capped")
	for _, c := range []*customer{down, denied} {
		dep.addTenant(c, c.settingsFile(t, dir, 1))
	}
	// The steady tenant samples its latency as fast as its items arrive: its cap is
	// out of the way (at the default, a fast machine spent it in the 27 s).
	dep.addTenant(steady, steady.settingsFile(t, dir, 1, "cap: {max_per_window: 1000000, window: 1h}\n"))
	dep.addTenant(capped, capped.settingsFile(t, dir, 1, "cap: {max_per_window: 3, window: 2s}\n"))
	consume := startConsume(t, "", base)

	// The steady tenant's latency before anything goes wrong: publish to import.
	latency := func(ids ...string) time.Duration {
		t.Helper()
		start := time.Now()
		mustRun("publish", "--tenant", "steady", "--file", itemsFile(t, dir, ids[0]+".ndjson", "steady", 8, ids...))
		testkit.WaitForDiag(t, 20*time.Second, "the steady tenant's items", func() bool {
			got := importTimes(steady.sim)
			for _, id := range ids {
				if len(got["ionix:"+id]) == 0 {
					return false
				}
			}
			return true
		}, func() string { return consume.logs.String() })
		worst := time.Duration(0)
		got := importTimes(steady.sim)
		for _, id := range ids {
			worst = max(worst, got["ionix:"+id][0].Sub(start))
		}
		return worst
	}
	before := latency("s-1")

	if err := down.sim.SetConfig(emulator.Config{Outage: emulator.Outage{Mode: emulator.Outage503, For: emulator.Duration(30 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	outageEnds := time.Now().Add(30 * time.Second)
	if err := denied.sim.SetConfig(emulator.Config{Roles: []string{"itil"}}); err != nil {
		t.Fatal(err)
	}
	mustRun("publish", "--tenant", "down", "--file", itemsFile(t, dir, "down.ndjson", "down", 8, "d-1", "d-2"))
	mustRun("publish", "--tenant", "denied", "--file", itemsFile(t, dir, "denied.ndjson", "denied", 8, "x-1", "x-2"))
	mustRun("publish", "--tenant", "capped", "--file", itemsFile(t, dir, "capped.ndjson", "capped", 8, "c-1", "c-2", "c-3", "c-4", "c-5", "c-6", "c-7", "c-8", "c-9"))
	testkit.WaitForDiag(t, 10*time.Second, "the denied tenant pauses", func() bool {
		return strings.Contains(consume.logs.String(), `"tenant":"denied"`) && strings.Contains(consume.logs.String(), "403")
	}, func() string { return consume.logs.String() })

	testkit.WaitForDiag(t, 10*time.Second, "status --all shows the denied tenant paused", func() bool {
		out, code := runBinary(t, base, "status", "--all", "--json")
		var st struct {
			Tenants []struct {
				Tenant string `json:"tenant"`
				Active bool   `json:"active"`
				Paused string `json:"paused"`
				Budget struct {
					Limit int `json:"limit"`
				} `json:"budget"`
			} `json:"tenants"`
		}
		if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || len(st.Tenants) != 4 {
			return false
		}
		for _, ts := range st.Tenants {
			switch {
			case !ts.Active:
				return false
			case ts.Tenant == "denied" && !strings.Contains(ts.Paused, "403"):
				return false
			case ts.Tenant == "steady" && ts.Paused != "":
				return false
			case ts.Tenant == "capped" && ts.Budget.Limit != 3:
				return false
			}
		}
		return true
	}, func() string { out, _ := runBinary(t, base, "status", "--all", "--json"); return out })
	if out, code := runBinary(t, base, "status", "--tenant", "capped"); code != exitOK || !strings.Contains(out, "servicenow_capped") {
		t.Errorf("status --tenant capped: exit %d\n%s", code, out)
	}
	var during []time.Duration
	for i := 0; time.Until(outageEnds) > 3*time.Second; i++ {
		during = append(during, latency(fmt.Sprintf("s-%d", i+2)))
	}
	worst := time.Duration(0)
	for _, d := range during {
		worst = max(worst, d)
	}
	t.Logf("steady tenant, publish to import: %v before; during the other tenants' outage and 403, %d samples, worst %v", before, len(during), worst)
	if worst > before+time.Second {
		t.Errorf("the steady tenant's items took up to %v during another tenant's outage, %v before: more than 1 s later", worst, before)
	}
	if n := len(down.sim.Incidents()); n != 0 {
		t.Fatalf("%d incidents at the instance that is down", n)
	}
	// The outage ends: the down tenant's items arrive.
	testkit.WaitForDiag(t, 30*time.Second, "the down tenant's items after its outage", func() bool {
		return len(down.sim.Incidents()) == 2
	}, func() string { return consume.logs.String() })
	if n := len(denied.sim.Incidents()); n != 0 {
		t.Errorf("%d incidents at the instance that denies the role", n)
	}
	testkit.WaitFor(t, 20*time.Second, "the capped tenant's burst", func() bool { return len(capped.sim.Incidents()) == 9 })
	if n := maxInWindow(capped.sim, 2*time.Second); n != 3 {
		t.Errorf("capped: at most %d imports within 2 s; want its cap of 3, exactly", n)
	}
	for _, c := range []*customer{down, denied, steady, capped} {
		for _, in := range c.sim.Incidents() {
			if !strings.HasPrefix(in.ShortDescription, c.id+":") || in.Inserts != 1 {
				t.Errorf("%s: incident %q inserted %d times", c.id, in.ShortDescription, in.Inserts)
			}
		}
	}
	consume.stop(t)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
