package tenant

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ionix/ionixsnow/config"
)

// Settings are one tenant's integration (SPEC §9): the per-customer sections of the
// config file, whether it is active, and when it last changed. In memory the secrets
// are plaintext (or, from View and List, "set"); Settings never marshals them: its
// MarshalJSON, String and GoString show a secret as "set".
type Settings struct {
	ServiceNow ServiceNow `json:"servicenow"`
	Filter     Filter     `json:"filter"`
	Cap        Cap        `json:"cap"`
	Consumer   Consumer   `json:"consumer"`
	IONIX      IONIX      `json:"ionix"`
	Active     bool       `json:"active"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// ServiceNow is the tenant's instance and its OAuth credentials.
type ServiceNow struct {
	InstanceURL       string   `json:"instance_url"`
	ClientID          string   `json:"client_id"`
	ClientSecret      string   `json:"client_secret,omitempty"`
	Username          string   `json:"username,omitempty"`
	Password          string   `json:"password,omitempty"`
	RefreshToken      string   `json:"refresh_token,omitempty"`
	ImportTable       string   `json:"import_table"`
	FieldPrefix       string   `json:"field_prefix"`
	Timeout           Duration `json:"timeout"`
	AllowInsecureHTTP bool     `json:"allow_insecure_http"`
}

// Filter is what of the tenant's items is sent.
type Filter struct {
	Categories       []string `json:"categories"`
	UrgencyThreshold float64  `json:"urgency_threshold"`
}

// Cap is the tenant's own budget.
type Cap struct {
	MaxPerWindow int      `json:"max_per_window"`
	Window       Duration `json:"window"`
}

// Consumer is the tenant's part of the consumer section.
type Consumer struct {
	ResolveOnClose bool `json:"resolve_on_close"`
}

// IONIX is the tenant's IONIX API, for the poller.
type IONIX struct {
	APIURL  string `json:"api_url"`
	Account string `json:"account"`
	Token   string `json:"token,omitempty"`
}

// Duration is a time.Duration written as in the config file ("30s", "1h0m0s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Secret fields, by their config key (the associated data of their ciphertext).
const (
	FieldClientSecret = "servicenow.client_secret"
	FieldPassword     = "servicenow.password"
	FieldRefreshToken = "servicenow.refresh_token"
	FieldIONIXToken   = "ionix.token"
)

// SecretFields are the keys of the secret fields, in order.
var SecretFields = []string{FieldClientSecret, FieldPassword, FieldRefreshToken, FieldIONIXToken}

// secret returns a pointer to the secret field with the key.
func (s *Settings) secret(key string) *string {
	switch key {
	case FieldClientSecret:
		return &s.ServiceNow.ClientSecret
	case FieldPassword:
		return &s.ServiceNow.Password
	case FieldRefreshToken:
		return &s.ServiceNow.RefreshToken
	case FieldIONIXToken:
		return &s.IONIX.Token
	}
	panic("tenant: no secret field " + key)
}

// Shown is what a secret's value reads as outside the store.
const Shown = "set"

// Redacted returns a copy with every secret that is set shown as "set".
func (s Settings) Redacted() Settings {
	s.Filter.Categories = append([]string(nil), s.Filter.Categories...)
	for _, k := range SecretFields {
		if p := s.secret(k); *p != "" {
			*p = Shown
		}
	}
	return s
}

// MarshalJSON writes the settings with their secrets shown as "set".
func (s Settings) MarshalJSON() ([]byte, error) { return json.Marshal(toDocument(s.Redacted())) }

// String is the redacted JSON of the settings.
func (s Settings) String() string { return redactedJSON(s) }

// GoString is String, for %#v.
func (s Settings) GoString() string { return s.String() }

// MarshalJSON writes the section with its secrets shown as "set".
func (sn ServiceNow) MarshalJSON() ([]byte, error) {
	return json.Marshal(storedServiceNow(Settings{ServiceNow: sn}.Redacted().ServiceNow))
}

// String is the section's redacted JSON.
func (sn ServiceNow) String() string { return redactedJSON(sn) }

// GoString is String, for %#v.
func (sn ServiceNow) GoString() string { return sn.String() }

// MarshalJSON writes the section with its token shown as "set".
func (i IONIX) MarshalJSON() ([]byte, error) {
	return json.Marshal(storedIONIX(Settings{IONIX: i}.Redacted().IONIX))
}

// String is the section's redacted JSON.
func (i IONIX) String() string { return redactedJSON(i) }

// GoString is String, for %#v.
func (i IONIX) GoString() string { return i.String() }

func redactedJSON(v json.Marshaler) string {
	b, err := v.MarshalJSON()
	if err != nil {
		return "{unprintable}"
	}
	return string(b)
}

// document is Settings as stored: the same fields, in types without the redacting
// methods (its secrets are ciphertext when it is written).
type document struct {
	ServiceNow storedServiceNow `json:"servicenow"`
	Filter     Filter           `json:"filter"`
	Cap        Cap              `json:"cap"`
	Consumer   Consumer         `json:"consumer"`
	IONIX      storedIONIX      `json:"ionix"`
	Active     bool             `json:"active"`
	UpdatedAt  time.Time        `json:"updated_at"`
}

type (
	storedServiceNow ServiceNow
	storedIONIX      IONIX
)

func toDocument(s Settings) document {
	return document{ServiceNow: storedServiceNow(s.ServiceNow), Filter: s.Filter, Cap: s.Cap, Consumer: s.Consumer,
		IONIX: storedIONIX(s.IONIX), Active: s.Active, UpdatedAt: s.UpdatedAt}
}

func (d document) settings() Settings {
	return Settings{ServiceNow: ServiceNow(d.ServiceNow), Filter: d.Filter, Cap: d.Cap, Consumer: d.Consumer,
		IONIX: IONIX(d.IONIX), Active: d.Active, UpdatedAt: d.UpdatedAt}
}

// FromConfig takes a tenant's settings from the tenant keys of c (config.TenantKeys).
func FromConfig(c config.Config) Settings {
	sn := c.ServiceNow
	return Settings{
		ServiceNow: ServiceNow{
			InstanceURL: sn.InstanceURL, ClientID: sn.ClientID, ClientSecret: sn.ClientSecret,
			Username: sn.Username, Password: sn.Password, RefreshToken: sn.RefreshToken,
			ImportTable: sn.ImportTable, FieldPrefix: sn.FieldPrefix, Timeout: Duration(sn.Timeout),
			AllowInsecureHTTP: sn.AllowInsecureHTTP,
		},
		Filter:   Filter{Categories: append([]string(nil), c.Filter.Categories...), UrgencyThreshold: c.Filter.UrgencyThreshold},
		Cap:      Cap{MaxPerWindow: c.Cap.MaxPerWindow, Window: Duration(c.Cap.Window)},
		Consumer: Consumer{ResolveOnClose: c.Consumer.ResolveOnClose},
		IONIX:    IONIX{APIURL: c.IONIX.APIURL, Account: c.IONIX.Account, Token: c.IONIX.Token},
	}
}

// Config returns base (the deployment's configuration) with the tenant keys replaced
// by the tenant's settings: what consume, doctor and poll run with for the tenant.
func (s Settings) Config(base config.Config) config.Config {
	c := base
	sn := &c.ServiceNow
	sn.InstanceURL, sn.ClientID, sn.ClientSecret = s.ServiceNow.InstanceURL, s.ServiceNow.ClientID, s.ServiceNow.ClientSecret
	sn.Username, sn.Password, sn.RefreshToken = s.ServiceNow.Username, s.ServiceNow.Password, s.ServiceNow.RefreshToken
	sn.ImportTable, sn.FieldPrefix, sn.Timeout = s.ServiceNow.ImportTable, s.ServiceNow.FieldPrefix, time.Duration(s.ServiceNow.Timeout)
	sn.AllowInsecureHTTP = s.ServiceNow.AllowInsecureHTTP
	// Per-category overrides are not tenant settings (SPEC §9): a tenant maps with
	// the defaults of SPEC §4.
	sn.CategoryOverrides, sn.ImpactOverrides = nil, nil
	c.Filter = config.Filter{Categories: append([]string(nil), s.Filter.Categories...), UrgencyThreshold: s.Filter.UrgencyThreshold}
	// The tenant's own cap, paced as the deployment paces every tenant's.
	c.Cap.MaxPerWindow, c.Cap.Window = s.Cap.MaxPerWindow, time.Duration(s.Cap.Window)
	c.Consumer.ResolveOnClose = s.Consumer.ResolveOnClose
	c.IONIX.APIURL, c.IONIX.Account, c.IONIX.Token = s.IONIX.APIURL, s.IONIX.Account, s.IONIX.Token
	return c
}

// Validate checks the settings as the config file's tenant keys are checked, with the
// credentials consume needs required: every problem, each naming its key.
func (s Settings) Validate() error { return config.ValidateTenant(s.Config(config.Default())) }

// ValidateFor is Validate for tenant id, which also checks that ionix.account is the
// tenant's IONIX account (its id is the account, lower-cased): a poller must never
// read another customer's items for it.
func (s Settings) ValidateFor(id string) error {
	ps := config.AsProblems(s.Validate())
	if a := s.IONIX.Account; a != "" && strings.ToLower(a) != id {
		ps = append(ps, config.Problem{Key: "ionix.account", Message: fmt.Sprintf(
			"must be the IONIX account of tenant %s (its id is the account name, lower-cased), got %q", id, a)})
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}
