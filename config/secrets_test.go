package config_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ionix/ionixsnow/config"
)

func TestSecretKeys(t *testing.T) {
	want := []string{"nats.embedded_token", "servicenow.client_secret", "servicenow.password", "servicenow.refresh_token", "ionix.token"}
	if got := config.SecretKeys(); !slices.Equal(got, want) {
		t.Fatalf("SecretKeys = %q, want %q", got, want)
	}
	for _, k := range want {
		if !config.IsSecret(k) {
			t.Errorf("IsSecret(%q) = false", k)
		}
	}
	if config.IsSecret("servicenow.client_id") || config.IsSecret("nope") {
		t.Error("IsSecret of a non-secret = true")
	}
}

// Distinctive secret values; none may appear in any error or output.
var secrets = map[string]string{
	"client_secret": "CLIENT-SECRET-q8Zr",
	"password":      "PASSWORD-x3Kp",
	"refresh_token": "REFRESH-TOKEN-v7Lm",
	"token":         "IONIX-TOKEN-n2Wd",
	"file":          "FILE-SECRET-h5Qs",
	"nats":          "NATS-PASS-k9Tb",
	"natstoken":     "NATS-TOKEN-c4Jy",
}

func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for name, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows the %s secret:\n%s", what, name, text)
		}
	}
}

func TestNoSecretInErrorsOrOutput(t *testing.T) {
	secretFile := writeFile(t, "secret", secrets["file"]+"\n")
	yamlText := fmt.Sprintf(`nats:
  url: "nats://user:%s@a:4222,http://%s@b"
  replicas: 4
servicenow:
  instance_url: http://dev1.service-now.com/path?q
  client_secret: %s
  client_secret_file: %s
  password: %s
  refresh_token: %s
  timeout: soon
  bogus: %s
ionix:
  token: %s
  api_url: ftp://x
cap:
  window: "%s"
`, secrets["nats"], secrets["natstoken"], secrets["client_secret"], secrets["file"], secrets["password"],
		secrets["refresh_token"], secrets["password"], secrets["token"], secrets["token"])
	p := writeFile(t, "c.yaml", yamlText)

	for _, tc := range []struct {
		name string
		path string
		env  map[string]string
	}{
		{"YAML", p, nil},
		{"YAML and env", p, map[string]string{
			"IONIXSNOW_SERVICENOW_PASSWORD_FILE": secretFile,
			"IONIXSNOW_SERVICENOW_PASSWORD":      secrets["password"],
			"IONIXSNOW_IONIX_TOKEN":              secrets["token"],
			"IONIXSNOW_CONSUMER_CONCURRENCY":     secrets["token"],
			"IONIXSNOW_SERVICENOW_CLIENT_ID":     "",
		}},
		{"env only", "", map[string]string{
			"IONIXSNOW_SERVICENOW_CLIENT_SECRET":    secrets["client_secret"],
			"IONIXSNOW_SERVICENOW_REFRESH_TOKEN":    secrets["refresh_token"],
			"IONIXSNOW_IONIX_TOKEN_FILE":            secretFile,
			"IONIXSNOW_NATS_URL":                    "tls://" + secrets["natstoken"] + "@x,bad://u:" + secrets["nats"] + "@y",
			"IONIXSNOW_SERVICENOW_INSTANCE_URL":     "https://admin:" + secrets["password"] + "@dev1.service-now.com",
			"IONIXSNOW_SERVICENOW_IMPACT_OVERRIDES": "x",
		}},
		{"broken YAML around a secret", writeFile(t, "broken.yaml",
			"servicenow:\n  client_secret: \""+secrets["client_secret"]+"\n  password: '"+secrets["password"]+"\n"), nil},
		{"secret where a list belongs", writeFile(t, "list.yaml",
			"filter:\n  categories: {a: "+secrets["token"]+"}\nservicenow:\n  password: ["+secrets["password"]+"]\n"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.LoadFor(tc.path, envOf(tc.env), config.Needs{ServiceNow: true, IONIX: true})
			if err == nil {
				t.Fatal("want problems")
			}
			assertNoSecret(t, "Load error", err.Error())
			for _, p := range problemsOf(t, err) {
				assertNoSecret(t, "problem", p.Key+p.Message)
			}
			if err := cfg.ValidateFor(config.Needs{ServiceNow: true, IONIX: true}); err != nil {
				assertNoSecret(t, "ValidateFor error", err.Error())
			}
			assertNoSecret(t, "String", cfg.String())
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				assertNoSecret(t, verb, fmt.Sprintf(verb, cfg))
				assertNoSecret(t, verb+" of pointer", fmt.Sprintf(verb, &cfg))
			}
			j, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			assertNoSecret(t, "JSON", string(j))
			y, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			assertNoSecret(t, "YAML", string(y))
			assertNoSecret(t, "Redacted", fmt.Sprintf("%#v", cfg.Redacted().ServiceNow)+fmt.Sprintf("%#v", cfg.Redacted().IONIX)+cfg.Redacted().NATS.URL)
		})
	}
}

func TestRedacted(t *testing.T) {
	c := config.Default()
	c.NATS.URL = "nats://user:pw@a:4222,nats://tok@b:4222,nats://c:4222"
	c.ServiceNow.ClientID = "client-id"
	c.ServiceNow.ClientSecret = "cs"
	c.ServiceNow.Username = "user"
	c.ServiceNow.Password = "pw"
	c.ServiceNow.RefreshToken = "" // unset stays empty
	c.ServiceNow.ImpactOverrides = map[string]string{"DNS": "3"}
	c.Filter.Categories = []string{"DNS"}
	c.IONIX.Token = "tok"
	c.IONIX.Account = "acme"
	orig := c
	origImpact := c.ServiceNow.ImpactOverrides

	r := c.Redacted()
	want := c
	want.NATS.URL = "nats://redacted@a:4222,nats://redacted@b:4222,nats://c:4222"
	want.ServiceNow.ClientSecret = config.RedactedValue
	want.ServiceNow.Password = config.RedactedValue
	want.IONIX.Token = config.RedactedValue
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("Redacted =\n%#v\nwant\n%#v", r.ServiceNow, want.ServiceNow)
	}
	if r.ServiceNow.RefreshToken != "" {
		t.Errorf("unset secret redacted to %q, want empty", r.ServiceNow.RefreshToken)
	}
	// The copy shares no map or slice with the original.
	r.ServiceNow.ImpactOverrides["DNS"] = "1"
	r.Filter.Categories[0] = "PKI"
	if origImpact["DNS"] != "3" || c.Filter.Categories[0] != "DNS" || c.ServiceNow.ClientSecret != orig.ServiceNow.ClientSecret {
		t.Error("Redacted changed the original")
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := fullConfig
	c.ServiceNow.ClientSecret, c.ServiceNow.Password, c.ServiceNow.RefreshToken, c.IONIX.Token = "", "", "", ""
	c.ServiceNow.Username = "" // a username alone is inconsistent
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"timeout: 1m30s\n", "window: 30m\n", "poll_interval: 1h\n", "urgency_threshold: 7.5\n", "replicas: 3\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("YAML lacks %q:\n%s", want, out)
		}
	}
	got, err := config.Load(writeFile(t, "out.yaml", string(out)), envOf(nil))
	if err != nil {
		t.Fatalf("Load(marshalled) = %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip =\n%v\nwant\n%v", got, c)
	}
	if def := config.Default().String(); !strings.Contains(def, "categories: []") {
		t.Errorf("String of defaults:\n%s", def)
	}

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatalf("%v: %s", err, j)
	}
	if m["cap"]["window"] != "30m" || m["nats"]["replicas"] != 3.0 || m["consumer"]["resolve_on_close"] != true {
		t.Errorf("JSON = %s", j)
	}
	if len(m) != 9 {
		t.Errorf("JSON has %d sections, want 9: %s", len(m), j)
	}
}
