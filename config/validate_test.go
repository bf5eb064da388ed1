package config_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/config"
)

func TestValidateListsEveryProblem(t *testing.T) {
	c := config.Default()
	c.NATS.Replicas = 3 // embedded: must be 1
	c.NATS.Stream = "IONIX.ITEMS"
	c.NATS.Consumer = "service now"
	c.ServiceNow.InstanceURL = "http://dev1.service-now.com"
	c.ServiceNow.ImportTable = "U-Table"
	c.ServiceNow.FieldPrefix = "U_"
	c.ServiceNow.Timeout = 0
	c.ServiceNow.ImpactOverrides = map[string]string{"DNS": "High"}
	c.ServiceNow.CategoryOverrides = map[string]string{"PKI": " "}
	c.Filter.Categories = []string{"DNS", ""}
	c.Filter.UrgencyThreshold = 0
	c.Cap.MaxPerWindow = 0
	c.Cap.Window = 500 * time.Millisecond
	c.Cap.Pacing = "smooth"
	c.Cap.Burst = -1
	c.Cap.HighReserve = -2
	c.Consumer.Concurrency = 257
	c.Consumer.MaxBackoff = 0
	c.Consumer.AckWait = 10 * time.Millisecond
	c.Consumer.MaxDeliver = -1
	c.Consumer.MaxAckPending = 100 // below concurrency 257
	c.Consumer.DrainTimeout = 0
	c.Consumer.ProcessConcurrency = 0
	c.IONIX.APIURL = "http://api.portal.ionix.io"
	c.IONIX.PollInterval = 5 * time.Second
	c.HTTP.Listen = "localhost"
	c.Log.Level = "verbose"
	c.Log.Format = "xml"
	err := c.Validate()
	wantKeys(t, err,
		"nats.replicas", "nats.stream", "nats.consumer",
		"servicenow.instance_url", "servicenow.import_table", "servicenow.field_prefix", "servicenow.timeout",
		"servicenow.impact_overrides", "servicenow.category_overrides",
		"filter.categories", "filter.urgency_threshold",
		"cap.max_per_window", "cap.window", "cap.pacing", "cap.burst", "cap.high_reserve", "consumer.concurrency", "consumer.max_backoff",
		"consumer.ack_wait", "consumer.max_deliver", "consumer.max_ack_pending", "consumer.drain_timeout", "consumer.process_concurrency",
		"ionix.api_url", "ionix.poll_interval", "http.listen", "log.level", "log.format",
	)
	wantText(t, err,
		"servicenow.instance_url: must be https (plain http only for loopback)",
		"nats.replicas: must be 1 with the embedded server",
		`servicenow.impact_overrides: "DNS": must be "1" (High), "2" (Medium) or "3" (Low), got "High"`,
		"log.level: must be one of trace, debug, info, warn, error",
	)
	// One line per problem, each "key: message".
	ps := problemsOf(t, err)
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(ps) {
		t.Fatalf("%d lines for %d problems", len(lines), len(ps))
	}
	for i, line := range lines {
		if !strings.HasPrefix(line, ps[i].Key+": ") {
			t.Errorf("line %q does not start with its key %q", line, ps[i].Key)
		}
	}
	// errors.As finds a single Problem too; AsProblems recovers them all.
	var p config.Problem
	if !errors.As(err, &p) || p != ps[0] {
		t.Errorf("errors.As(Problem) = %v", p)
	}
	if got := config.AsProblems(err); len(got) != len(ps) {
		t.Errorf("AsProblems = %d problems, want %d", len(got), len(ps))
	}
	if config.AsProblems(errors.New("other")) != nil {
		t.Error("AsProblems(other error) != nil")
	}
}

func TestValidateRanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*config.Config)
		bad  string // key with a problem, "" for none
	}{
		{"replicas 3 with a cluster", func(c *config.Config) { c.NATS.URL = "nats://a:4222"; c.NATS.Replicas = 3 }, ""},
		{"replicas 5", func(c *config.Config) { c.NATS.URL = "nats://a:4222"; c.NATS.Replicas = 5 }, ""},
		{"replicas 2", func(c *config.Config) { c.NATS.URL = "nats://a:4222"; c.NATS.Replicas = 2 }, "nats.replicas"},
		{"replicas 0", func(c *config.Config) { c.NATS.URL = "nats://a:4222"; c.NATS.Replicas = 0 }, "nats.replicas"},
		{"replicas 7", func(c *config.Config) { c.NATS.URL = "nats://a:4222"; c.NATS.Replicas = 7 }, "nats.replicas"},
		{"embedded needs embedded_listen", func(c *config.Config) { c.NATS.EmbeddedListen = "" }, "nats.embedded_listen"},
		{"no embedded_listen with a URL", func(c *config.Config) { c.NATS.URL = "nats://a"; c.NATS.EmbeddedListen = "" }, ""},
		{"embedded_listen malformed", func(c *config.Config) { c.NATS.EmbeddedListen = "127.0.0.1" }, "nats.embedded_listen"},
		{"embedded needs store_dir", func(c *config.Config) { c.NATS.StoreDir = "" }, "nats.store_dir"},
		{"stream with *", func(c *config.Config) { c.NATS.Stream = "A*" }, "nats.stream"},
		{"stream with >", func(c *config.Config) { c.NATS.Stream = "A>" }, "nats.stream"},
		{"stream with /", func(c *config.Config) { c.NATS.Stream = "A/B" }, "nats.stream"},
		{"stream empty", func(c *config.Config) { c.NATS.Stream = "" }, "nats.stream"},
		{"stream too long", func(c *config.Config) { c.NATS.Stream = strings.Repeat("S", 256) }, "nats.stream"},
		{"consumer with tab", func(c *config.Config) { c.NATS.Consumer = "a\tb" }, "nats.consumer"},
		{"consumer with - and _", func(c *config.Config) { c.NATS.Consumer = "snow-consumer_1" }, ""},
		{"import table empty", func(c *config.Config) { c.ServiceNow.ImportTable = "" }, "servicenow.import_table"},
		{"field prefix empty ok", func(c *config.Config) { c.ServiceNow.FieldPrefix = "" }, ""},
		{"field prefix x_acme_", func(c *config.Config) { c.ServiceNow.FieldPrefix = "x_acme_" }, ""},
		{"timeout negative", func(c *config.Config) { c.ServiceNow.Timeout = -time.Second }, "servicenow.timeout"},
		{"impact 1,2,3", func(c *config.Config) { c.ServiceNow.ImpactOverrides = map[string]string{"A": "1", "B": "2", "C": "3"} }, ""},
		{"impact 4", func(c *config.Config) { c.ServiceNow.ImpactOverrides = map[string]string{"A": "4"} }, "servicenow.impact_overrides"},
		{"impact key case twins", func(c *config.Config) { c.ServiceNow.ImpactOverrides = map[string]string{"DNS": "1", "dns": "1"} }, "servicenow.impact_overrides"},
		{"impact empty key", func(c *config.Config) { c.ServiceNow.ImpactOverrides = map[string]string{"": "1"} }, "servicenow.impact_overrides"},
		{"category override", func(c *config.Config) {
			c.ServiceNow.CategoryOverrides = map[string]string{"Vulnerability": "Security"}
		}, ""},
		{"categories case twins", func(c *config.Config) { c.Filter.Categories = []string{"DNS", "dns"} }, "filter.categories"},
		{"urgency 1", func(c *config.Config) { c.Filter.UrgencyThreshold = 1 }, ""},
		{"urgency 10", func(c *config.Config) { c.Filter.UrgencyThreshold = 10 }, ""},
		{"urgency 10.5", func(c *config.Config) { c.Filter.UrgencyThreshold = 10.5 }, "filter.urgency_threshold"},
		{"urgency 0.9", func(c *config.Config) { c.Filter.UrgencyThreshold = 0.9 }, "filter.urgency_threshold"},
		{"urgency NaN", func(c *config.Config) { c.Filter.UrgencyThreshold = math.NaN() }, "filter.urgency_threshold"},
		{"cap 1 per 1s", func(c *config.Config) { c.Cap.MaxPerWindow = 1; c.Cap.Window = time.Second }, ""},
		{"concurrency 1", func(c *config.Config) { c.Consumer.Concurrency = 1 }, ""},
		{"concurrency 256", func(c *config.Config) { c.Consumer.Concurrency = 256 }, ""},
		{"concurrency 0", func(c *config.Config) { c.Consumer.Concurrency = 0 }, "consumer.concurrency"},
		{"max_backoff 1s", func(c *config.Config) { c.Consumer.MaxBackoff = time.Second }, ""},
		{"poll 10s", func(c *config.Config) { c.IONIX.PollInterval = 10 * time.Second }, ""},
		{"poll 9s", func(c *config.Config) { c.IONIX.PollInterval = 9 * time.Second }, "ionix.poll_interval"},
		{"api_url empty without need", func(c *config.Config) { c.IONIX.APIURL = "" }, ""},
		{"api_url with path", func(c *config.Config) { c.IONIX.APIURL = "https://proxy.example.com/ionix" }, ""},
		{"api_url on loopback http", func(c *config.Config) { c.IONIX.APIURL = "http://127.0.0.1:8081" }, ""},
		{"api_url remote http", func(c *config.Config) { c.IONIX.APIURL = "http://proxy.example.com" }, "ionix.api_url"},
		{"http listen disabled", func(c *config.Config) { c.HTTP.Listen = "" }, ""},
		{"http listen all interfaces", func(c *config.Config) { c.HTTP.Listen = ":9090" }, ""},
		{"http listen ipv6", func(c *config.Config) { c.HTTP.Listen = "[::1]:9090" }, ""},
		{"http listen port range", func(c *config.Config) { c.HTTP.Listen = ":70000" }, "http.listen"},
		{"http listen named port", func(c *config.Config) { c.HTTP.Listen = ":http" }, "http.listen"},
		{"log trace/console", func(c *config.Config) { c.Log.Level, c.Log.Format = "trace", "console" }, ""},
		{"log upper case (Validate does not normalise)", func(c *config.Config) { c.Log.Level = "INFO" }, "log.level"},
		// Only commands that talk to ServiceNow need the password (ValidateFor).
		{"username without password", func(c *config.Config) { c.ServiceNow.Username = "u" }, ""},
		{"password without username", func(c *config.Config) { c.ServiceNow.Password = "p" }, "servicenow.username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			tc.set(&c)
			err := c.Validate()
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			wantKeys(t, err, tc.bad)
		})
	}
}

func TestNATSURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"", true},
		{"nats://127.0.0.1:4222", true},
		{"nats://a:4222,nats://b:4222, nats://c:4222", true},
		{"tls://nats.example.com:4222", true},
		{"ws://nats.example.com:8080", true},
		{"wss://nats.example.com", true},
		{"nats://user:pass@nats.example.com", true},
		{"http://nats.example.com", false},
		{"nats.example.com:4222", false},
		{"nats://a:4222,,nats://b:4222", false},
		{"nats://", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c := config.Default()
			c.NATS.URL = tc.url
			err := c.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate = %v", err)
			}
			if !tc.ok {
				wantKeys(t, err, "nats.url")
			}
		})
	}
}

func TestInstanceURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://dev12345.service-now.com", true},
		{"https://dev12345.service-now.com/", true},
		{"https://snow.internal.example.com:8443", true},
		{"http://127.0.0.1:8080", true},
		{"http://127.1.2.3:8080", true},
		{"http://localhost:8080", true},
		{"http://LocalHost", true},
		{"http://[::1]:8080", true},
		{"http://dev12345.service-now.com", false},
		{"http://10.0.0.1:8080", false},
		{"http://[::2]:8080", false},
		{"http://localhost.evil.example:8080", false},
		{"http://127.0.0.1.nip.io", false},
		{"ftp://dev12345.service-now.com", false},
		{"dev12345.service-now.com", false},
		{"https://", false},
		{"https://dev12345.service-now.com/now/nav/ui", false},
		{"https://dev12345.service-now.com/?x=1", false},
		{"https://dev12345.service-now.com/#frag", false},
		{"https://admin:pw@dev12345.service-now.com", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c := config.Default()
			c.ServiceNow.InstanceURL = tc.url
			err := c.Validate()
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			wantKeys(t, err, "servicenow.instance_url")
			if strings.HasPrefix(tc.url, "http://") {
				wantText(t, err, "servicenow.instance_url: must be https (plain http only for loopback)")
			}
		})
	}
}

func TestValidateFor(t *testing.T) {
	snow := config.Needs{ServiceNow: true}
	ionix := config.Needs{IONIX: true}
	both := config.Needs{ServiceNow: true, IONIX: true}
	full := func(c *config.Config) {
		c.ServiceNow.InstanceURL = "https://dev1.service-now.com"
		c.ServiceNow.ClientID = "id"
		c.ServiceNow.ClientSecret = "cs"
		c.ServiceNow.Username = "u"
		c.ServiceNow.Password = "p"
		c.IONIX.Token = "t"
		c.IONIX.Account = "a"
	}
	for _, tc := range []struct {
		name  string
		needs config.Needs
		set   func(*config.Config)
		keys  []string
	}{
		{"publish needs nothing", config.Needs{}, func(*config.Config) {}, nil},
		{"consume on defaults", snow, func(*config.Config) {},
			[]string{"servicenow.instance_url", "servicenow.client_id", "servicenow.client_secret", "servicenow.username"}},
		{"password grant", snow, full, nil},
		{"refresh-token grant", snow, func(c *config.Config) {
			full(c)
			c.ServiceNow.Username, c.ServiceNow.Password, c.ServiceNow.RefreshToken = "", "", "rt"
		}, nil},
		{"both grants given", snow, func(c *config.Config) { full(c); c.ServiceNow.RefreshToken = "rt" }, nil},
		{"no grant", snow, func(c *config.Config) { full(c); c.ServiceNow.Username, c.ServiceNow.Password = "", "" },
			[]string{"servicenow.username"}},
		{"half a password grant", snow, func(c *config.Config) { full(c); c.ServiceNow.Password = "" },
			[]string{"servicenow.password"}},
		{"no client secret", snow, func(c *config.Config) { full(c); c.ServiceNow.ClientSecret = "" },
			[]string{"servicenow.client_secret"}},
		{"poll on defaults", ionix, func(*config.Config) {}, []string{"ionix.token", "ionix.account"}},
		{"poll without api_url", ionix, func(c *config.Config) { full(c); c.IONIX.APIURL = "" }, []string{"ionix.api_url"}},
		{"poll needs no ServiceNow", ionix, func(c *config.Config) { c.IONIX.Token, c.IONIX.Account = "t", "a" }, nil},
		{"consume needs no IONIX", snow, func(c *config.Config) { full(c); c.IONIX.Token, c.IONIX.Account = "", "" }, nil},
		{"both, with a general problem too", both, func(c *config.Config) { c.Cap.MaxPerWindow = 0 },
			[]string{"servicenow.instance_url", "servicenow.client_id", "servicenow.client_secret", "servicenow.username",
				"ionix.token", "ionix.account", "cap.max_per_window"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			tc.set(&c)
			err := c.ValidateFor(tc.needs)
			if tc.keys == nil {
				if err != nil {
					t.Fatalf("ValidateFor = %v", err)
				}
				return
			}
			wantKeys(t, err, tc.keys...)
		})
	}
}

// TestAllowInsecureHTTP: plain http to another host only with the explicit switch.
func TestAllowInsecureHTTP(t *testing.T) {
	c := config.Default()
	c.ServiceNow.InstanceURL = "http://servicenow-sim:8080"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "servicenow.allow_insecure_http") {
		t.Errorf("http to another host without the switch: %v, want a problem naming the switch", err)
	}
	c.ServiceNow.AllowInsecureHTTP = true
	if err := c.Validate(); err != nil {
		t.Errorf("http with allow_insecure_http: %v", err)
	}
	c.IONIX.APIURL = "http://ionix-sim:8080"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ionix.api_url") {
		t.Errorf("the switch must not reach ionix.api_url: %v", err)
	}
}

// TestEmbeddedListenNeedsCredentials: the embedded server listens beyond
// loopback only with a token; the problem names nats.embedded_listen and both
// ways out.
func TestEmbeddedListenNeedsCredentials(t *testing.T) {
	const token = "0123456789abcdef-embedded"
	tests := []struct {
		name   string
		url    string
		listen string
		token  string
		keys   []string
	}{
		{"default loopback", "", "127.0.0.1:4222", "", nil},
		{"IPv6 loopback", "", "[::1]:4222", "", nil},
		{"localhost", "", "localhost:4222", "", nil},
		{"empty host is loopback in package embedded", "", ":4222", "", nil},
		{"every interface", "", "0.0.0.0:4222", "", []string{"nats.embedded_listen"}},
		{"every IPv6 interface", "", "[::]:4222", "", []string{"nats.embedded_listen"}},
		{"a LAN address", "", "192.168.1.20:4222", "", []string{"nats.embedded_listen"}},
		{"a host name", "", "nats.internal:4222", "", []string{"nats.embedded_listen"}},
		{"every interface with a token", "", "0.0.0.0:4222", token, nil},
		{"a token too short", "", "0.0.0.0:4222", "short-token", []string{"nats.embedded_token"}},
		{"an external server: embedded_listen unused", "nats://nats.internal:4222", "0.0.0.0:4222", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			c.NATS.URL, c.NATS.EmbeddedListen, c.NATS.EmbeddedToken = tt.url, tt.listen, tt.token
			err := c.Validate()
			if tt.keys == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			wantKeys(t, err, tt.keys...)
			if tt.keys[0] == "nats.embedded_listen" {
				wantText(t, err, "127.0.0.1:4222", "nats.embedded_token", "nats.embedded_token_file")
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("the token is shown:\n%v", err)
			}
		})
	}
}
