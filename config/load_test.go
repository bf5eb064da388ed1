package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/config"
)

const fullYAML = `# every key, none at its default
nats:
  url: "nats://n1.example.com:4222, tls://n2.example.com:4222"
  creds_file: /etc/nats/ionix.creds
  embedded_listen: "127.0.0.1:14222"
  store_dir: /var/lib/ionixsnow
  stream: ACTIONS
  consumer: snow
  replicas: 3
servicenow:
  instance_url: https://dev12345.service-now.com/
  client_id: abc123
  client_secret: cs
  username: ionix.integration
  password: pw
  refresh_token: rt
  import_table: x_ionix_items
  field_prefix: ""
  timeout: 1m30s
  category_overrides: {Vulnerability: Security, "Email Security": Email}
  impact_overrides:
    DNS: "3"
    PKI: 1
filter:
  categories: [Vulnerability, PKI]
  urgency_threshold: 7.5
cap:
  max_per_window: 500
  window: 30m
  pacing: burst
  burst: 7
consumer:
  concurrency: 16
  resolve_on_close: true
  max_backoff: 10m
  ack_wait: 90s
  max_deliver: 20
  max_ack_pending: 64
  drain_timeout: 10s
  process_concurrency: 200
ionix:
  api_url: https://ionix.example.com/proxy/
  token: tok
  account: acme
  poll_interval: 1h
http:
  listen: ":9191"
log:
  level: DEBUG
  format: json
`

var fullConfig = config.Config{
	NATS: config.NATS{
		URL:       "nats://n1.example.com:4222, tls://n2.example.com:4222",
		CredsFile: "/etc/nats/ionix.creds", EmbeddedListen: "127.0.0.1:14222", StoreDir: "/var/lib/ionixsnow",
		Stream: "ACTIONS", Consumer: "snow", Replicas: 3,
	},
	ServiceNow: config.ServiceNow{
		InstanceURL: "https://dev12345.service-now.com", ClientID: "abc123", ClientSecret: "cs",
		Username: "ionix.integration", Password: "pw", RefreshToken: "rt",
		ImportTable: "x_ionix_items", FieldPrefix: "", Timeout: 90 * time.Second,
		CategoryOverrides: map[string]string{"Vulnerability": "Security", "Email Security": "Email"},
		ImpactOverrides:   map[string]string{"DNS": "3", "PKI": "1"},
	},
	Filter: config.Filter{Categories: []string{"Vulnerability", "PKI"}, UrgencyThreshold: 7.5},
	Cap:    config.Cap{MaxPerWindow: 500, Window: 30 * time.Minute, Pacing: config.PacingBurst, Burst: 7},
	Consumer: config.Consumer{Concurrency: 16, ResolveOnClose: true, MaxBackoff: 10 * time.Minute,
		AckWait: 90 * time.Second, MaxDeliver: 20, MaxAckPending: 64, DrainTimeout: 10 * time.Second, ProcessConcurrency: 200},
	IONIX: config.IONIX{APIURL: "https://ionix.example.com/proxy", Token: "tok", Account: "acme", PollInterval: time.Hour},
	HTTP:  config.HTTP{Listen: ":9191"},
	Log:   config.Log{Level: "debug", Format: "json"},
}

func TestLoadFullYAML(t *testing.T) {
	p := writeFile(t, "full.yaml", fullYAML)
	cfg, err := config.LoadFor(p, envOf(nil), config.Needs{ServiceNow: true, IONIX: true})
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if !reflect.DeepEqual(cfg, fullConfig) {
		t.Fatalf("Load =\n%#v\nwant\n%#v", cfg.Redacted(), fullConfig.Redacted())
	}
}

func TestLoadPartialAndNullYAML(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       func(*config.Config)
	}{
		{"empty file", "", func(*config.Config) {}},
		{"comments only", "# nothing\n", func(*config.Config) {}},
		{"null document", "~\n", func(*config.Config) {}},
		{"empty section keeps defaults", "nats:\ncap:\n", func(*config.Config) {}},
		{"null value keeps the default", "cap:\n  window:\n  max_per_window: ~\n", func(*config.Config) {}},
		{"one key", "cap:\n  window: 90s\n", func(c *config.Config) { c.Cap.Window = 90 * time.Second }},
		{"empty string clears", "http:\n  listen: \"\"\n", func(c *config.Config) { c.HTTP.Listen = "" }},
		{"empty list is nil", "filter:\n  categories: []\n", func(*config.Config) {}},
		{"block list", "filter:\n  categories:\n    - DNS\n    - Cloud\n", func(c *config.Config) { c.Filter.Categories = []string{"DNS", "Cloud"} }},
		{"anchors and aliases", "filter:\n  categories: &c [DNS]\nnats:\n  consumer: &n snow\n  stream: *n\n", func(c *config.Config) {
			c.Filter.Categories = []string{"DNS"}
			c.NATS.Consumer, c.NATS.Stream = "snow", "snow"
		}},
		{"integer for a float", "filter:\n  urgency_threshold: 9\n", func(c *config.Config) { c.Filter.UrgencyThreshold = 9 }},
		{"number for a string", "ionix:\n  account: 0123\n", func(c *config.Config) { c.IONIX.Account = "0123" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", tc.yaml)
			cfg, err := config.Load(p, envOf(nil))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			want := config.Default()
			tc.want(&want)
			if !reflect.DeepEqual(cfg, want) {
				t.Fatalf("Load =\n%v\nwant\n%v", cfg, want)
			}
		})
	}
}

func TestLoadYAMLProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		keys       []string
		text       []string
	}{
		{"unknown key names key and line", "nats:\n  stream: S\n  urll: nats://x\n",
			[]string{"nats.urll"}, []string{"nats.urll: unknown key; did you mean url?", "c.yaml:3"}},
		{"unknown key far from any", "log:\n  colour: red\n",
			[]string{"log.colour"}, []string{"log.colour: unknown key (", "c.yaml:2"}},
		{"unknown section", "servicenw:\n  client_id: x\n",
			[]string{"servicenw"}, []string{"servicenw: unknown section; did you mean servicenow?", "c.yaml:1"}},
		{"_file of a key that is not a secret", "servicenow:\n  client_id_file: /x\n",
			[]string{"servicenow.client_id_file"}, []string{"unknown key", "c.yaml:2"}},
		{"key twice", "cap:\n  window: 1h\n  window: 2h\n",
			[]string{"cap.window"}, []string{"key given twice (first at line 2)", "c.yaml:3"}},
		{"section twice", "cap:\n  window: 1h\ncap:\n  window: 2h\n",
			[]string{"cap"}, []string{"section given twice"}},
		{"bad duration names value and line", "cap:\n  window: soon\n",
			[]string{"cap.window"}, []string{"cap.window: must be a duration", `got "soon"`, "c.yaml:2"}},
		{"bare number is not a duration", "servicenow:\n  timeout: 30\n",
			[]string{"servicenow.timeout"}, []string{"must be a duration", `got "30"`}},
		{"bad int", "cap:\n  max_per_window: 1.5\n",
			[]string{"cap.max_per_window"}, []string{"must be a whole number"}},
		{"bad bool", "consumer:\n  resolve_on_close: perhaps\n",
			[]string{"consumer.resolve_on_close"}, []string{"must be true or false"}},
		{"list for a string", "nats:\n  url: [a, b]\n",
			[]string{"nats.url"}, []string{"must be a string, not a list or mapping"}},
		{"string for a list", "filter:\n  categories: DNS\n",
			[]string{"filter.categories"}, []string{"must be a list of strings"}},
		{"list for a map", "servicenow:\n  impact_overrides: [1]\n",
			[]string{"servicenow.impact_overrides"}, []string{"must be a mapping"}},
		{"section not a mapping", "nats: 5\n",
			[]string{"nats"}, []string{"must be a mapping of keys"}},
		{"root not a mapping", "- a\n- b\n",
			[]string{"$FILE"}, []string{"must be a mapping of sections"}},
		{"invalid YAML", "nats:\n  url: \"unterminated\n",
			[]string{"$FILE"}, []string{"not valid YAML"}},
		{"two documents", "nats: {}\n---\ncap: {}\n",
			[]string{"$FILE"}, []string{"exactly one YAML document"}},
		{"several at once, with validation", "nats:\n  replicas: 2\n  bogus: 1\ncap:\n  window: x\nlog:\n  level: loud\n",
			[]string{"nats.replicas", "nats.bogus", "cap.window", "log.level"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", tc.yaml)
			_, err := config.Load(p, envOf(nil))
			keys := make([]string, len(tc.keys))
			for i, k := range tc.keys {
				keys[i] = strings.ReplaceAll(k, "$FILE", p)
			}
			wantKeys(t, err, keys...)
			wantText(t, err, tc.text...)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load("/nonexistent/ionixsnow.yaml", envOf(map[string]string{"IONIXSNOW_CAP_WINDOW": "abc"}))
	// The file problem and the environment problem, but no guesses from validation.
	wantKeys(t, err, "/nonexistent/ionixsnow.yaml", "cap.window")
	wantText(t, err, "cannot read the config file: no such file")
}

func TestEnvOverrides(t *testing.T) {
	base := writeFile(t, "base.yaml", "cap:\n  window: 2h\nfilter:\n  categories: [Cloud]\nservicenow:\n  impact_overrides: {DNS: \"3\"}\n")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want func(*config.Config)
	}{
		{"string", map[string]string{"IONIXSNOW_NATS_STREAM": "OTHER"}, func(c *config.Config) { c.NATS.Stream = "OTHER" }},
		{"secret string", map[string]string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "s"}, func(c *config.Config) { c.ServiceNow.ClientSecret = "s" }},
		{"int", map[string]string{"IONIXSNOW_CAP_MAX_PER_WINDOW": "250"}, func(c *config.Config) { c.Cap.MaxPerWindow = 250 }},
		{"float", map[string]string{"IONIXSNOW_FILTER_URGENCY_THRESHOLD": "8.5"}, func(c *config.Config) { c.Filter.UrgencyThreshold = 8.5 }},
		{"bool", map[string]string{"IONIXSNOW_CONSUMER_RESOLVE_ON_CLOSE": "true"}, func(c *config.Config) { c.Consumer.ResolveOnClose = true }},
		{"bool yes", map[string]string{"IONIXSNOW_CONSUMER_RESOLVE_ON_CLOSE": "yes"}, func(c *config.Config) { c.Consumer.ResolveOnClose = true }},
		{"duration over YAML", map[string]string{"IONIXSNOW_CAP_WINDOW": "30s"}, func(c *config.Config) { c.Cap.Window = 30 * time.Second }},
		{"duration compound", map[string]string{"IONIXSNOW_IONIX_POLL_INTERVAL": "1h30m"}, func(c *config.Config) { c.IONIX.PollInterval = 90 * time.Minute }},
		{"list replaces YAML", map[string]string{"IONIXSNOW_FILTER_CATEGORIES": "Vulnerability, PKI,"}, func(c *config.Config) {
			c.Filter.Categories = []string{"Vulnerability", "PKI"}
		}},
		{"map replaces YAML", map[string]string{"IONIXSNOW_SERVICENOW_IMPACT_OVERRIDES": "PKI=1, Email Security=3"}, func(c *config.Config) {
			c.ServiceNow.ImpactOverrides = map[string]string{"PKI": "1", "Email Security": "3"}
		}},
		{"map values may hold =", map[string]string{"IONIXSNOW_SERVICENOW_CATEGORY_OVERRIDES": "DNS=a=b"}, func(c *config.Config) {
			c.ServiceNow.CategoryOverrides = map[string]string{"DNS": "a=b"}
		}},
		{"empty variable is unset", map[string]string{"IONIXSNOW_CAP_WINDOW": "", "IONIXSNOW_NATS_STREAM": ""}, func(*config.Config) {}},
		{"log values lower-cased", map[string]string{"IONIXSNOW_LOG_LEVEL": "WARN", "IONIXSNOW_LOG_FORMAT": "Console"}, func(c *config.Config) {
			c.Log.Level, c.Log.Format = "warn", "console"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(base, envOf(tc.env))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			want := config.Default()
			want.Cap.Window = 2 * time.Hour
			want.Filter.Categories = []string{"Cloud"}
			want.ServiceNow.ImpactOverrides = map[string]string{"DNS": "3"}
			tc.want(&want)
			if !reflect.DeepEqual(cfg, want) {
				t.Fatalf("Load =\n%v\nwant\n%v", cfg, want)
			}
		})
	}
}

func TestEnvMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		keys []string
		text []string
	}{
		{"duration", map[string]string{"IONIXSNOW_CAP_WINDOW": "abc"},
			[]string{"cap.window"}, []string{"cap.window: must be a duration", `got "abc"`, "IONIXSNOW_CAP_WINDOW"}},
		{"int", map[string]string{"IONIXSNOW_NATS_REPLICAS": "three"},
			[]string{"nats.replicas"}, []string{"must be a whole number", "IONIXSNOW_NATS_REPLICAS"}},
		{"float NaN", map[string]string{"IONIXSNOW_FILTER_URGENCY_THRESHOLD": "NaN"},
			[]string{"filter.urgency_threshold"}, []string{"must be a number", "IONIXSNOW_FILTER_URGENCY_THRESHOLD"}},
		{"bool", map[string]string{"IONIXSNOW_CONSUMER_RESOLVE_ON_CLOSE": "maybe"},
			[]string{"consumer.resolve_on_close"}, []string{"must be true or false"}},
		{"map without =", map[string]string{"IONIXSNOW_SERVICENOW_IMPACT_OVERRIDES": "DNS=3,PKI"},
			[]string{"servicenow.impact_overrides"}, []string{`entry "PKI" must be category=value`, "IONIXSNOW_SERVICENOW_IMPACT_OVERRIDES"}},
		{"map key twice", map[string]string{"IONIXSNOW_SERVICENOW_IMPACT_OVERRIDES": "DNS=3,DNS=2"},
			[]string{"servicenow.impact_overrides"}, []string{`"DNS" given twice`}},
		{"all collected, with validation of the rest", map[string]string{
			"IONIXSNOW_CAP_WINDOW":           "abc",
			"IONIXSNOW_CAP_MAX_PER_WINDOW":   "-",
			"IONIXSNOW_CONSUMER_MAX_BACKOFF": "forever",
			"IONIXSNOW_LOG_FORMAT":           "xml",
			"IONIXSNOW_HTTP_LISTEN":          "9090",
		}, []string{"cap.window", "cap.max_per_window", "consumer.max_backoff", "log.format", "http.listen"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load("", envOf(tc.env))
			wantKeys(t, err, tc.keys...)
			wantText(t, err, tc.text...)
			if n := len(problemsOf(t, err)); n != len(tc.keys) {
				t.Errorf("%d problems, want %d (a malformed key is not also reported by validation):\n%v", n, len(tc.keys), err)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	secret := writeFile(t, "secret", "from-file\n")
	crlf := writeFile(t, "crlf", "crlf-secret\r\n")
	empty := writeFile(t, "empty", "\n")
	const missing = "/nonexistent/secret"
	for _, tc := range []struct {
		name    string
		yaml    string
		env     map[string]string
		want    string // the client secret, when no problem
		keys    []string
		text    []string
		notText []string
	}{
		{name: "YAML _file, trailing newline trimmed", yaml: "servicenow:\n  client_secret_file: " + secret + "\n", want: "from-file"},
		{name: "env _FILE, CRLF trimmed", env: map[string]string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE": crlf}, want: "crlf-secret"},
		{name: "env _FILE beats YAML value", yaml: "servicenow:\n  client_secret: yaml-value\n",
			env: map[string]string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE": secret}, want: "from-file"},
		{name: "env value beats YAML _file", yaml: "servicenow:\n  client_secret_file: " + missing + "\n",
			env: map[string]string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "env-value"}, want: "env-value"},
		{name: "env _FILE beats YAML _file", yaml: "servicenow:\n  client_secret_file: " + missing + "\n",
			env: map[string]string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE": secret}, want: "from-file"},
		{name: "empty _file is unset", yaml: "servicenow:\n  client_secret: v\n  client_secret_file: \"\"\n", want: "v"},
		{name: "missing file names the key, not the content", yaml: "servicenow:\n  client_secret_file: " + missing + "\n",
			keys: []string{"servicenow.client_secret_file"}, text: []string{"cannot read " + missing + ": no such file", "c.yaml:2"}},
		{name: "missing file from env", env: map[string]string{"IONIXSNOW_IONIX_TOKEN_FILE": missing},
			keys: []string{"ionix.token_file"}, text: []string{"IONIXSNOW_IONIX_TOKEN_FILE"}},
		{name: "empty file", env: map[string]string{"IONIXSNOW_SERVICENOW_PASSWORD_FILE": empty, "IONIXSNOW_SERVICENOW_USERNAME": "u"},
			keys: []string{"servicenow.password_file"}, text: []string{"is empty"}},
		{name: "both forms in YAML", yaml: "servicenow:\n  client_secret: yaml-value\n  client_secret_file: " + secret + "\n",
			keys: []string{"servicenow.client_secret"}, text: []string{"given both as client_secret and as client_secret_file"},
			notText: []string{"yaml-value", "from-file"}},
		{name: "both forms in env", env: map[string]string{"IONIXSNOW_SERVICENOW_CLIENT_SECRET": "env-value", "IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE": secret},
			keys: []string{"servicenow.client_secret"}, text: []string{"both IONIXSNOW_SERVICENOW_CLIENT_SECRET and IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE"},
			notText: []string{"env-value", "from-file"}},
		{name: "_file must be a path", yaml: "ionix:\n  token_file: [a]\n", keys: []string{"ionix.token_file"}, text: []string{"must be a file path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = writeFile(t, "c.yaml", tc.yaml)
			}
			cfg, err := config.Load(path, envOf(tc.env))
			if tc.keys == nil {
				if err != nil {
					t.Fatalf("Load = %v", err)
				}
				if cfg.ServiceNow.ClientSecret != tc.want {
					t.Fatalf("client_secret = %q, want %q", cfg.ServiceNow.ClientSecret, tc.want)
				}
				return
			}
			wantKeys(t, err, tc.keys...)
			wantText(t, err, tc.text...)
			for _, s := range tc.notText {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows secret %q:\n%v", s, err)
				}
			}
		})
	}
}

func TestSecretFileMissingNotRequiredTwice(t *testing.T) {
	// A secret whose file is missing is one problem, not also "required".
	env := map[string]string{}
	for k, v := range validCreds {
		env[k] = v
	}
	delete(env, "IONIXSNOW_SERVICENOW_CLIENT_SECRET")
	env["IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE"] = "/nonexistent/x"
	_, err := config.LoadFor("", envOf(env), config.Needs{ServiceNow: true})
	wantKeys(t, err, "servicenow.client_secret_file")
}

func TestUnknownEnv(t *testing.T) {
	err := config.UnknownEnv([]string{
		"PATH=/bin", "IONIXSNOW_CAP_WINDOW=1h", "IONIXSNOW_SERVICENOW_CLIENT_SECRET_FILE=/x",
		"IONIXSNOW_SERVICENOW_CLIENTSECRET=oops", "IONIXSNOW_NOPE=1",
	})
	wantKeys(t, err, "IONIXSNOW_SERVICENOW_CLIENTSECRET", "IONIXSNOW_NOPE")
	wantText(t, err, "did you mean IONIXSNOW_SERVICENOW_CLIENT_SECRET?")
	if strings.Contains(err.Error(), "oops") {
		t.Errorf("UnknownEnv shows a value: %v", err)
	}
	if err := config.UnknownEnv([]string{"HOME=/root", "IONIXSNOW_LOG_LEVEL=debug"}); err != nil {
		t.Errorf("UnknownEnv = %v, want nil", err)
	}
}
