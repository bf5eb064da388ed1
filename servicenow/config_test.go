package servicenow

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func validConfig() Config {
	return Config{
		InstanceURL:  "https://acme.service-now.com",
		ClientID:     "0123456789abcdef",
		ClientSecret: testClientSecret,
		Username:     "ionix.integration",
		Password:     testPassword,
	}
}

// keys returns the keys of the problems Validate reports, in order.
func keys(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		out = append(out, fe.Key)
	}
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // keys with a problem
	}{
		{"option 1", func(*Config) {}, nil},
		{"option 2", func(c *Config) { c.Username, c.Password, c.RefreshToken = "", "", "rt-value" }, nil},
		{"both options", func(c *Config) { c.RefreshToken = "rt-value" }, nil},
		{"trailing slash", func(c *Config) { c.InstanceURL += "/" }, nil},
		{"custom table and timeout", func(c *Config) { c.ImportTable, c.Timeout = "x_acme_items", time.Minute }, nil},
		{"empty", func(c *Config) { *c = Config{} },
			[]string{"servicenow.client_id", "servicenow.client_secret", "servicenow.instance_url", "servicenow.username"}},
		{"every problem at once", func(c *Config) {
			*c = Config{InstanceURL: "ftp://x", ClientSecret: " secret-x ", Password: "pw-value-x", ImportTable: "Bad-Table", Timeout: -time.Second}
		}, []string{"servicenow.client_id", "servicenow.client_secret", "servicenow.import_table", "servicenow.instance_url",
			"servicenow.timeout", "servicenow.username"}},
		{"username without password", func(c *Config) { c.Password = "" }, []string{"servicenow.password"}},
		{"password without username", func(c *Config) { c.Username = "" }, []string{"servicenow.username"}},
		{"refresh token with a newline", func(c *Config) { c.RefreshToken = "rt\n" }, []string{"servicenow.refresh_token"}},
		{"client id with a space", func(c *Config) { c.ClientID = " id" }, []string{"servicenow.client_id"}},
		{"password may have spaces", func(c *Config) { c.Password = " pass word " }, nil},
		{"http on a public host", func(c *Config) { c.InstanceURL = "http://acme.service-now.com" }, []string{"servicenow.instance_url"}},
		{"http on a private address", func(c *Config) { c.InstanceURL = "http://10.0.0.1:8080" }, []string{"servicenow.instance_url"}},
		{"http on a name that looks local", func(c *Config) { c.InstanceURL = "http://localhost.example.com" }, []string{"servicenow.instance_url"}},
		{"http on 127.0.0.1", func(c *Config) { c.InstanceURL = "http://127.0.0.1:8080" }, nil},
		{"http on 127.1.2.3", func(c *Config) { c.InstanceURL = "http://127.1.2.3" }, nil},
		{"http on ::1", func(c *Config) { c.InstanceURL = "http://[::1]:9000" }, nil},
		{"http on localhost", func(c *Config) { c.InstanceURL = "http://LocalHost:9000" }, nil},
		{"no scheme", func(c *Config) { c.InstanceURL = "acme.service-now.com" }, []string{"servicenow.instance_url"}},
		{"path", func(c *Config) { c.InstanceURL = "https://acme.service-now.com/api/now" }, []string{"servicenow.instance_url"}},
		{"query", func(c *Config) { c.InstanceURL = "https://acme.service-now.com?x=1" }, []string{"servicenow.instance_url"}},
		{"user info", func(c *Config) { c.InstanceURL = "https://admin:" + testPassword + "@acme.service-now.com" }, []string{"servicenow.instance_url"}},
		{"bad table", func(c *Config) { c.ImportTable = "u_ionix action" }, []string{"servicenow.import_table"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(&c)
			err := c.Validate()
			if got := keys(t, err); !slices.Equal(got, tt.want) {
				t.Fatalf("problems with %v, want %v\n%v", got, tt.want, err)
			}
			if err == nil {
				return
			}
			for _, secret := range []string{testClientSecret, testPassword, c.ClientSecret, c.Password, c.RefreshToken} {
				if strings.TrimSpace(secret) != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("error echoes a secret: %v", err)
				}
			}
			// New refuses what Validate refuses, with the same report.
			if _, nerr := New(c, zerolog.Nop()); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New: %v", nerr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := New(validConfig(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if c.ImportTable() != "u_ionix_action_item" || c.cfg.Timeout != 30*time.Second || c.InstanceURL() != "https://acme.service-now.com" {
		t.Errorf("defaults: table %q timeout %v url %q", c.ImportTable(), c.cfg.Timeout, c.InstanceURL())
	}
	if c.HasToken() {
		t.Error("a new client has a token")
	}
}
