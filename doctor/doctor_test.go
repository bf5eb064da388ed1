package doctor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/doctor"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// Distinctive credentials: none of them may appear in doctor's output.
const (
	clientID      = "ionix-doctor-client"
	clientSecret  = "cs-Zq81vT-distinct-client-secret"
	username      = "svc.ionix.doctor"
	password      = "pw-Kx44nR-distinct-user-password"
	wrongSecret   = "cs-WRONG-9d3Jf-client-secret"
	wrongPassword = "pw-WRONG-2mM21-user-password"
	badRefresh    = "rt-BOGUS-77qLp-refresh-token"
)

var secrets = []string{clientSecret, password, wrongSecret, wrongPassword, badRefresh}

// natsMode is the NATS side of a case.
type natsMode int

const (
	natsReady    natsMode = iota // JetStream with the stream and consumer created
	natsEmpty                    // JetStream without the topology
	natsDown                     // no connection (JS nil, NATSErr set)
	natsNoJetStr                 // a server without JetStream
)

// natsServers are started once per test and shared by its cases.
type natsServers struct {
	ready, empty *embedded.Server
	noJS         *server.Server
}

func startNATS(t *testing.T) *natsServers {
	t.Helper()
	var ns natsServers
	var err error
	if ns.ready, err = embedded.Start(embedded.Options{StoreDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.ready.Stop)
	if ns.empty, err = embedded.Start(embedded.Options{StoreDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.empty.Stop)
	ns.noJS, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.noJS.Start()
	if !ns.noJS.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server without JetStream not ready")
	}
	t.Cleanup(ns.noJS.Shutdown)

	js := natstest.Connect(t, ns.ready.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	def := config.Default().NATS
	if _, err := topology.Ensure(ctx, js, topology.Options{Names: topology.Names{Stream: def.Stream, Consumer: def.Consumer}}); err != nil {
		t.Fatal(err)
	}
	return &ns
}

func (ns *natsServers) options(t *testing.T, m natsMode) (jetstream.JetStream, error) {
	switch m {
	case natsReady:
		return natstest.Connect(t, ns.ready.URL()), nil
	case natsEmpty:
		return natstest.Connect(t, ns.empty.URL()), nil
	case natsNoJetStr:
		return natstest.Connect(t, ns.noJS.ClientURL()), nil
	}
	return nil, errors.New("connect to NATS at nats://127.0.0.1:1: nats: no servers available for connection")
}

// snow is an emulated instance behind an httptest server.
type snow struct {
	sim *emulator.Server
	ts  *httptest.Server
}

func newSnow(t *testing.T, o emulator.Options) *snow {
	t.Helper()
	o.ClientID, o.ClientSecret, o.Username, o.Password = clientID, clientSecret, username, password
	sim := emulator.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return &snow{sim: sim, ts: ts}
}

// goodConfig is a configuration that matches the emulator.
func goodConfig(instanceURL string) config.Config {
	c := config.Default()
	c.ServiceNow.InstanceURL = instanceURL
	c.ServiceNow.ClientID = clientID
	c.ServiceNow.ClientSecret = clientSecret
	c.ServiceNow.Username = username
	c.ServiceNow.Password = password
	return c
}

// refreshToken obtains a valid refresh token from the emulator by the password grant.
func refreshToken(t *testing.T, s *snow) string {
	t.Helper()
	resp, err := http.PostForm(s.ts.URL+"/oauth_token.do", url.Values{
		"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {clientSecret},
		"username": {username}, "password": {password},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.RefreshToken == "" {
		t.Fatalf("no refresh token from the emulator (HTTP %d, %v)", resp.StatusCode, err)
	}
	return body.RefreshToken
}

func run(t *testing.T, o doctor.Options) ([]doctor.Result, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o.Log = zerolog.Nop()
	rs := doctor.Run(ctx, o)
	var buf bytes.Buffer
	doctor.Print(&buf, rs)
	out := buf.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %q appears in doctor's output:\n%s", s, out)
		}
	}
	return rs, out
}

func find(rs []doctor.Result, check string) (doctor.Result, bool) {
	for _, r := range rs {
		if r.Check == check {
			return r, true
		}
	}
	return doctor.Result{}, false
}

// failedChecks lists the checks that failed.
func failedChecks(rs []doctor.Result) []string {
	var out []string
	for _, r := range rs {
		if r.Status == doctor.StatusFail {
			out = append(out, r.Check)
		}
	}
	return out
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// closedURL is a loopback URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestRunFailureModes(t *testing.T) {
	ns := startNATS(t)
	type want struct {
		check  string
		status doctor.Status
		fix    []string // substrings of Fix, case-insensitive
		detail []string // substrings of Detail, case-insensitive
	}
	tests := []struct {
		name     string
		emu      emulator.Options
		cfg      func(t *testing.T, s *snow, c *config.ServiceNow)
		nats     natsMode
		sendTest bool
		want     []want
		passed   bool
		// onlyFailures, when set, are exactly the checks that must fail.
		onlyFailures []string
	}{
		{
			name: "NATS unreachable", nats: natsDown,
			want: []want{
				{check: "nats", status: doctor.StatusFail, fix: []string{"nats.url", "start the NATS server"}, detail: []string{"no servers available"}},
				{check: "jetstream", status: doctor.StatusSkip},
				{check: "oauth", status: doctor.StatusOK},
			},
			onlyFailures: []string{"nats"},
		},
		{
			name: "JetStream disabled", nats: natsNoJetStr,
			want: []want{
				{check: "nats", status: doctor.StatusOK},
				{check: "jetstream", status: doctor.StatusFail, fix: []string{"enable JetStream", "-js"}},
			},
			onlyFailures: []string{"jetstream"},
		},
		{
			name: "topology not created yet", nats: natsEmpty, passed: true,
			want: []want{
				{check: "jetstream", status: doctor.StatusOK},
				{check: "stream", status: doctor.StatusWarn, fix: []string{"ionixsnow consume"}, detail: []string{"IONIX_ACTION_ITEMS"}},
			},
		},
		{
			name: "wrong client secret",
			cfg:  func(_ *testing.T, _ *snow, c *config.ServiceNow) { c.ClientSecret = wrongSecret },
			want: []want{
				{check: "oauth", status: doctor.StatusFail, fix: []string{"Application Registry", "step 1"}, detail: []string{"client id or secret"}},
				{check: "import_table", status: doctor.StatusSkip},
			},
			onlyFailures: []string{"oauth"},
		},
		{
			name: "wrong client id",
			cfg:  func(_ *testing.T, _ *snow, c *config.ServiceNow) { c.ClientID = "ionix-typo" },
			want: []want{
				{check: "oauth", status: doctor.StatusFail, fix: []string{"Application Registry"}},
			},
			onlyFailures: []string{"oauth"},
		},
		{
			name: "wrong password",
			cfg:  func(_ *testing.T, _ *snow, c *config.ServiceNow) { c.Password = wrongPassword },
			want: []want{
				{check: "oauth", status: doctor.StatusFail, fix: []string{"Users", "step 7"}, detail: []string{"username or password"}},
				{check: "import_table", status: doctor.StatusSkip},
			},
			onlyFailures: []string{"oauth"},
		},
		{
			name: "unknown user",
			cfg:  func(_ *testing.T, _ *snow, c *config.ServiceNow) { c.Username = "svc.nobody" },
			want: []want{
				{check: "oauth", status: doctor.StatusFail, fix: []string{"Users", "step 7"}},
			},
			onlyFailures: []string{"oauth"},
		},
		{
			name: "bad refresh token without password",
			cfg: func(_ *testing.T, _ *snow, c *config.ServiceNow) {
				c.Username, c.Password, c.RefreshToken = "", "", badRefresh
			},
			want: []want{
				{check: "oauth", status: doctor.StatusFail, fix: []string{"refresh token", "step 9"}},
			},
			onlyFailures: []string{"oauth"},
		},
		{
			name: "bad refresh token with a working password", passed: true,
			cfg: func(_ *testing.T, _ *snow, c *config.ServiceNow) { c.RefreshToken = badRefresh },
			want: []want{
				{check: "oauth", status: doctor.StatusOK, detail: []string{"password grant"}},
				{check: "refresh_token", status: doctor.StatusWarn, fix: []string{"refresh token", "step 9"}},
				{check: "import_table", status: doctor.StatusOK},
			},
		},
		{
			name: "good refresh token with a password", passed: true,
			cfg: func(t *testing.T, s *snow, c *config.ServiceNow) { c.RefreshToken = refreshToken(t, s) },
			want: []want{
				{check: "oauth", status: doctor.StatusOK, detail: []string{"refresh-token grant"}},
			},
		},
		{
			name: "good refresh token alone", passed: true,
			cfg: func(t *testing.T, s *snow, c *config.ServiceNow) {
				c.RefreshToken = refreshToken(t, s)
				c.Username, c.Password = "", ""
			},
			want: []want{
				{check: "oauth", status: doctor.StatusOK, detail: []string{"refresh-token grant"}},
				{check: "import_table", status: doctor.StatusOK},
			},
		},
		{
			name: "unknown import table",
			cfg:  func(_ *testing.T, _ *snow, c *config.ServiceNow) { c.ImportTable = "u_ionix_no_such_table" },
			want: []want{
				{check: "import_table", status: doctor.StatusFail, fix: []string{"inbound web service"}, detail: []string{"Invalid table"}},
			},
			onlyFailures: []string{"import_table", "field_lengths"},
		},
		{
			name: "unknown import table skips send test", sendTest: true,
			cfg: func(_ *testing.T, _ *snow, c *config.ServiceNow) { c.ImportTable = "u_ionix_no_such_table" },
			want: []want{
				{check: "import_table", status: doctor.StatusFail, fix: []string{"inbound web service"}},
				{check: "send_test", status: doctor.StatusSkip},
			},
		},
		{
			name: "user without import_transformer",
			emu:  emulator.Options{Roles: []string{emulator.RoleIntegration}},
			want: []want{
				{check: "import_table", status: doctor.StatusFail, fix: []string{"import_transformer"}},
			},
			onlyFailures: []string{"import_table"},
		},
		{
			name: "user without any role", sendTest: true,
			emu: emulator.Options{Roles: []string{}},
			want: []want{
				{check: "import_table", status: doctor.StatusFail, fix: []string{"import_transformer"}},
				{check: "send_test", status: doctor.StatusSkip},
			},
		},
		{
			name: "create ACL missing", sendTest: true,
			emu: emulator.Options{MissingACLs: []string{emulator.ACLCreate}},
			want: []want{
				{check: "import_table", status: doctor.StatusOK},
				{check: "send_test", status: doctor.StatusFail, fix: []string{"ACL", "ionix_integration"}},
			},
			onlyFailures: []string{"send_test"},
		},
		{
			name: "user without ionix_integration", sendTest: true,
			emu: emulator.Options{Roles: []string{emulator.RoleImportTransformer}},
			want: []want{
				{check: "send_test", status: doctor.StatusFail, fix: []string{"ACL", "ionix_integration"}},
			},
			onlyFailures: []string{"send_test"},
		},
		{
			name: "staging table as created", sendTest: true,
			emu: emulator.Options{StagingAsCreated: true},
			want: []want{
				{check: "field_lengths", status: doctor.StatusFail, fix: []string{"max length", "4000"}, detail: []string{"u_name is 40"}},
				{check: "send_test", status: doctor.StatusOK},
				{check: "field_truncation", status: doctor.StatusFail, fix: []string{"max length", "4000"}, detail: []string{"cut at 40"}},
			},
			onlyFailures: []string{"field_lengths", "field_truncation"},
		},
		{
			name: "Coalesce not ticked on correlation_id", sendTest: true,
			emu: emulator.Options{NoCoalesce: true},
			want: []want{
				{check: "send_test", status: doctor.StatusOK, detail: []string{"INC0010001 inserted"}},
				{check: "coalesce", status: doctor.StatusFail, fix: []string{"tick Coalesce", "correlation_id → Correlation ID", "step 4"},
					detail: []string{"answered inserted INC0010002, not an update of INC0010001", "does not coalesce"}},
				{check: "field_truncation", status: doctor.StatusOK, detail: []string{"INC0010002"}},
			},
			onlyFailures: []string{"coalesce"},
		},
		{
			name: "correlation_id not mapped", sendTest: true,
			emu: emulator.Options{UnmappedCorrelationID: true},
			want: []want{
				{check: "coalesce", status: doctor.StatusFail, fix: []string{"add the field map correlation_id → Correlation ID", "step 4", "step 2"},
					detail: []string{"inserted INC0010002", "not mapped"}},
				{check: "field_truncation", status: doctor.StatusWarn},
			},
			onlyFailures: []string{"coalesce"},
		},
		{
			name: "instance that ignores unchanged rows still updates", sendTest: true, passed: true,
			emu: emulator.Options{IgnoreUnchanged: true},
			want: []want{
				{check: "coalesce", status: doctor.StatusOK, detail: []string{"updated INC0010001"}},
			},
		},
		{
			name: "staging table as created, without --send-test",
			emu:  emulator.Options{StagingAsCreated: true},
			want: []want{
				{check: "field_lengths", status: doctor.StatusFail, fix: []string{"max length", "4000"}},
			},
			onlyFailures: []string{"field_lengths"},
		},
		{
			name: "name and body 40, dictionary unreadable", sendTest: true,
			emu: emulator.Options{NameBodyMaxLength: emulator.CreatedMaxLength,
				MissingACLs: []string{emulator.ACLDictionaryRead}},
			want: []want{
				{check: "field_lengths", status: doctor.StatusSkip},
				{check: "field_truncation", status: doctor.StatusFail, fix: []string{"max length", "4000"}, detail: []string{"name arrived as 40", "body arrived as 40"}},
			},
			onlyFailures: []string{"field_truncation"},
		},
		{
			name: "incident not readable", sendTest: true, passed: true,
			emu: emulator.Options{MissingACLs: []string{emulator.ACLIncidentRead}},
			want: []want{
				{check: "send_test", status: doctor.StatusOK, detail: []string{"INC0010001"}},
				{check: "field_truncation", status: doctor.StatusWarn, fix: []string{"read access"}, detail: []string{"INC0010001"}},
			},
		},
		{
			name: "instance hibernating", sendTest: true,
			emu: emulator.Options{Hibernating: true},
			want: []want{
				{check: "servicenow_url", status: doctor.StatusFail, fix: []string{"wake"}, detail: []string{"hibernat"}},
				{check: "oauth", status: doctor.StatusSkip},
			},
			onlyFailures: []string{"servicenow_url"},
		},
		{
			name: "instance answers 503",
			emu:  emulator.Options{Outage: emulator.Outage{Mode: emulator.Outage503}},
			want: []want{
				{check: "servicenow_url", status: doctor.StatusFail, fix: []string{"down"}, detail: []string{"HTTP 503"}},
				{check: "oauth", status: doctor.StatusSkip},
			},
			onlyFailures: []string{"servicenow_url"},
		},
		{
			name: "instance resets connections",
			emu:  emulator.Options{Outage: emulator.Outage{Mode: emulator.OutageReset}},
			want: []want{
				{check: "servicenow_url", status: doctor.StatusFail, fix: []string{"instance_url"}, detail: []string{"cannot reach"}},
			},
			onlyFailures: []string{"servicenow_url"},
		},
		{
			name: "nothing listens at the instance URL",
			cfg:  func(t *testing.T, _ *snow, c *config.ServiceNow) { c.InstanceURL = closedURL(t) },
			want: []want{
				{check: "servicenow_url", status: doctor.StatusFail, fix: []string{"instance_url"}, detail: []string{"cannot reach"}},
			},
			onlyFailures: []string{"servicenow_url"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSnow(t, tt.emu)
			cfg := goodConfig(s.ts.URL)
			if tt.cfg != nil {
				tt.cfg(t, s, &cfg.ServiceNow)
			}
			js, natsErr := ns.options(t, tt.nats)
			rs, out := run(t, doctor.Options{Config: cfg, JS: js, NATSErr: natsErr, SendTest: tt.sendTest})
			for _, w := range tt.want {
				r, ok := find(rs, w.check)
				if !ok {
					t.Errorf("no %s check in the results:\n%s", w.check, out)
					continue
				}
				if r.Status != w.status {
					t.Errorf("%s: status %s, want %s:\n%s", w.check, r.Status, w.status, out)
				}
				for _, f := range w.fix {
					if !containsFold(r.Fix, f) {
						t.Errorf("%s: fix %q does not name %q", w.check, r.Fix, f)
					}
				}
				for _, d := range w.detail {
					if !containsFold(r.Detail, d) {
						t.Errorf("%s: detail %q does not say %q", w.check, r.Detail, d)
					}
				}
				if r.Status != doctor.StatusOK && r.Status != doctor.StatusSkip && r.Fix == "" {
					t.Errorf("%s: status %s without a fix", w.check, r.Status)
				}
			}
			if got := doctor.Passed(rs); got != tt.passed {
				t.Errorf("Passed = %v, want %v:\n%s", got, tt.passed, out)
			}
			if tt.onlyFailures != nil {
				if got := failedChecks(rs); strings.Join(got, ",") != strings.Join(tt.onlyFailures, ",") {
					t.Errorf("failed checks %v, want %v:\n%s", got, tt.onlyFailures, out)
				}
			}
			if tt.passed != strings.Contains(out, "all checks passed") {
				t.Errorf("the printed verdict does not match Passed = %v:\n%s", tt.passed, out)
			}
		})
	}
}

func TestRunAllGreenAndRepeatedSendTest(t *testing.T) {
	ns := startNATS(t)
	s := newSnow(t, emulator.Options{})
	cfg := goodConfig(s.ts.URL)
	js, _ := ns.options(t, natsReady)

	rs, out := run(t, doctor.Options{Config: cfg, JS: js, SendTest: true})
	if !doctor.Passed(rs) || !strings.Contains(out, "all checks passed") {
		t.Fatalf("doctor did not pass on a good setup:\n%s", out)
	}
	wantChecks := []string{"nats", "jetstream", "stream", "consumer", "servicenow_url", "oauth", "import_table", "field_lengths", "send_test", "coalesce", "field_truncation"}
	var got []string
	for _, r := range rs {
		got = append(got, r.Check)
		if r.Status != doctor.StatusOK {
			t.Errorf("%s: %s (%s), want ok", r.Check, r.Status, r.Detail)
		}
		if r.Fix != "" {
			t.Errorf("%s passed but carries a fix %q", r.Check, r.Fix)
		}
	}
	if strings.Join(got, ",") != strings.Join(wantChecks, ",") {
		t.Errorf("checks %v, want %v", got, wantChecks)
	}
	st, _ := find(rs, "send_test")
	if !strings.Contains(st.Detail, "INC0010001") || !strings.Contains(st.Detail, "inserted") {
		t.Errorf("send_test detail %q does not name the new incident INC0010001", st.Detail)
	}
	if co, _ := find(rs, "coalesce"); !strings.Contains(co.Detail, "updated INC0010001") {
		t.Errorf("coalesce detail %q does not name the update of INC0010001", co.Detail)
	}
	if ft, _ := find(rs, "field_truncation"); !strings.Contains(ft.Detail, "INC0010001") {
		t.Errorf("field_truncation detail %q does not name the incident", ft.Detail)
	}

	// A second --send-test updates the same incident.
	rs, out = run(t, doctor.Options{Config: cfg, JS: js, SendTest: true})
	if !doctor.Passed(rs) {
		t.Fatalf("second run failed:\n%s", out)
	}
	st, _ = find(rs, "send_test")
	if st.Status != doctor.StatusOK || !strings.Contains(st.Detail, "INC0010001") || !strings.Contains(st.Detail, "updated") {
		t.Errorf("second send_test: %s %q, want ok updating INC0010001", st.Status, st.Detail)
	}
	incs := s.sim.Incidents()
	if len(incs) != 1 {
		t.Fatalf("%d incidents after two --send-test runs, want 1", len(incs))
	}
	in := incs[0]
	if want := mapping.CorrelationID(doctor.TestItemID); in.CorrelationID != want || want != "ionix:ionixsnow-doctor-test" {
		t.Errorf("correlation id %q, want ionix:ionixsnow-doctor-test", in.CorrelationID)
	}
	if in.Inserts != 1 || in.Updates != 3 { // each run sends twice
		t.Errorf("%s: %d inserts, %d updates; want 1 and 3", in.Number, in.Inserts, in.Updates)
	}
	if len([]rune(in.ShortDescription)) <= 40 || len([]rune(in.Description)) <= 40 {
		t.Errorf("test incident fields are not longer than 40: %q / %q", in.ShortDescription, in.Description)
	}
}

// TestRunSecretsNeverShown runs the failure modes whose messages come from the
// ServiceNow client and checks the JSON form of the results too.
func TestRunSecretsNeverShown(t *testing.T) {
	s := newSnow(t, emulator.Options{})
	for _, mut := range []func(c *config.ServiceNow){
		func(c *config.ServiceNow) { c.ClientSecret = wrongSecret },
		func(c *config.ServiceNow) { c.Password = wrongPassword },
		func(c *config.ServiceNow) { c.RefreshToken = badRefresh },
		func(c *config.ServiceNow) { c.Username, c.Password, c.RefreshToken = "", "", badRefresh },
		func(c *config.ServiceNow) { c.ClientSecret, c.RefreshToken = wrongSecret, badRefresh },
	} {
		cfg := goodConfig(s.ts.URL)
		mut(&cfg.ServiceNow)
		rs, _ := run(t, doctor.Options{Config: cfg, NATSErr: errors.New("not configured")})
		b, err := json.Marshal(rs)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range secrets {
			if strings.Contains(string(b), sec) {
				t.Errorf("secret %q appears in the results: %s", sec, b)
			}
		}
	}
}

// TestRunAllowsInsecureHTTPAsConsumeDoes: servicenow.allow_insecure_http lets
// doctor reach a plain http instance beyond loopback, as it lets consume; without
// it doctor refuses the URL.
func TestRunAllowsInsecureHTTPAsConsumeDoes(t *testing.T) {
	host := testkit.NonLoopbackIPv4(t)
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", host, err)
	}
	ts := httptest.NewUnstartedServer(emulator.New(emulator.Options{
		ClientID: clientID, ClientSecret: clientSecret, Username: username, Password: password}))
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	for _, tt := range []struct {
		allow bool
		want  doctor.Status
	}{{true, doctor.StatusOK}, {false, doctor.StatusFail}} {
		t.Run(fmt.Sprintf("allow_insecure_http %v", tt.allow), func(t *testing.T) {
			cfg := goodConfig(ts.URL)
			cfg.ServiceNow.AllowInsecureHTTP = tt.allow
			rs, out := run(t, doctor.Options{Config: cfg, NATSErr: errors.New("not configured")})
			for _, check := range []string{"servicenow_url", "oauth", "import_table"} {
				if r, _ := find(rs, check); tt.allow && r.Status != doctor.StatusOK {
					t.Errorf("%s: %s, want ok:\n%s", check, r.Status, out)
				}
			}
			if r, _ := find(rs, "servicenow_url"); r.Status != tt.want {
				t.Errorf("servicenow_url: %s, want %s:\n%s", r.Status, tt.want, out)
			}
		})
	}
}
