package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Roles the emulated instance knows.
const (
	RoleIntegration           = "ionix_integration"      // the integration role of the guide
	RoleImportTransformer     = "import_transformer"     // needed by the Import Set API
	RoleITIL                  = "itil"                   // reads incidents
	RoleAdmin                 = "admin"                  // passes every check
	RolePersonalizeDictionary = "personalize_dictionary" // reads sys_dictionary
)

// ACLs the customer's admin creates (integration guide, "Creating a New
// ACL", and the optional read access of the README). Name them in
// [Config.MissingACLs] to emulate a setup step that was skipped.
const (
	ACLCreate         = "create"          // create on the staging table, role ionix_integration
	ACLWrite          = "write"           // write on the staging table, role ionix_integration
	ACLIncidentRead   = "incident_read"   // read on incident for ionix_integration (optional step)
	ACLDictionaryRead = "dictionary_read" // read on sys_dictionary for ionix_integration (optional step)
)

// Outage modes of [Outage].
const (
	OutageOff   = ""
	Outage503   = "503"   // every request answers 503
	OutageReset = "reset" // every connection is closed (reset) without an answer
)

// More defaults of [Config].
const (
	DefaultRateLimitWindow = time.Hour
	DefaultErrorStatus     = http.StatusInternalServerError
)

var knownACLs = []string{ACLCreate, ACLWrite, ACLIncidentRead, ACLDictionaryRead}

// DefaultRoles are the roles of the integration user after the setup of the
// integration guide (through the group ionix_group).
func DefaultRoles() []string { return []string{RoleIntegration, RoleImportTransformer} }

// Duration is a [time.Duration] that is written to JSON as a Go duration
// string ("30m0s") and read from one ("1.5s", "100ms") or from a number of
// seconds.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New(`a duration is a string such as "30s" or a number of seconds`)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// RateLimit is a rate limit rule (System Web Services > REST > Rate Limit
// Rules) for all users: at most Requests API requests per Window per user.
// A window starts with the first request after the previous window ended
// (a real instance counts per clock hour). Every API request the rule
// covers answers X-RateLimit-Limit, X-RateLimit-Reset (Unix seconds) and
// X-RateLimit-Rule; one over the limit answers 429 with Retry-After
// (seconds, rounded up). Token requests are not covered.
type RateLimit struct {
	Requests int      `json:"requests"` // 0: no rule
	Window   Duration `json:"window"`   // 0: an hour
}

// Outage makes the instance unreachable: Mode "503" answers every request
// (token and API) with 503, "reset" closes every connection without an
// answer. It lasts until Until (zero: until switched off). For, when set,
// sets Until to now + For when the configuration is applied.
type Outage struct {
	Mode  string    `json:"mode"`
	Until time.Time `json:"until,omitzero"`
	For   Duration  `json:"for,omitempty"`
}

// Config holds the switches of a running emulator: everything that can be
// changed after [New], through [Server.SetConfig] or PUT /sim/config. It
// is also the JSON document of GET and PUT /sim/config. In Options and for
// SetConfig, zero durations, lengths and statuses mean their defaults.
type Config struct {
	AccessTokenTTL           Duration `json:"access_token_ttl"`
	RefreshTokenTTL          Duration `json:"refresh_token_ttl"`
	RefreshOmitsRefreshToken bool     `json:"refresh_omits_refresh_token"`
	IgnoreUnchanged          bool     `json:"ignore_unchanged"`
	NoCoalesce               bool     `json:"no_coalesce"`             // every row inserts a new incident
	UnmappedCorrelationID    bool     `json:"unmapped_correlation_id"` // correlation_id not copied to the incident

	NameBodyMaxLength int            `json:"name_body_max_length"`
	StagingAsCreated  bool           `json:"staging_as_created"`
	FieldMaxLength    map[string]int `json:"field_max_length,omitempty"`

	Roles       []string `json:"roles"`        // the user's roles
	MissingACLs []string `json:"missing_acls"` // ACLs the admin did not create

	RateLimit RateLimit `json:"rate_limit"`

	Hibernating   bool     `json:"hibernating"`
	Latency       Duration `json:"latency"`
	LatencyJitter Duration `json:"latency_jitter"`
	ErrorRate     float64  `json:"error_rate"`   // fraction of imports answering ErrorStatus
	ErrorStatus   int      `json:"error_status"` // 5xx; default 500
	Seed          int64    `json:"seed"`         // of the random draws (jitter, error and drop rates)
	Outage        Outage   `json:"outage"`
	DropResponses int      `json:"drop_responses"` // the next N imports are committed, then the connection closed
	DropRate      float64  `json:"drop_rate"`      // fraction of imports dropped after commit
}

// DefaultConfig is the configuration of New(Options{}): a set-up instance
// without faults.
func DefaultConfig() Config {
	c, _ := Config{}.normalize(time.Time{})
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	_, err := c.normalize(time.Now())
	return err
}

// normalize fills in defaults, turns Outage.For into Outage.Until and checks
// the values.
func (c Config) normalize(now time.Time) (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	defDur := func(d *Duration, def time.Duration, name string) {
		switch {
		case *d < 0:
			bad("%s must not be negative", name)
		case *d == 0:
			*d = Duration(def)
		}
	}
	defDur(&c.AccessTokenTTL, DefaultAccessTokenTTL, "access_token_ttl")
	defDur(&c.RefreshTokenTTL, DefaultRefreshTokenTTL, "refresh_token_ttl")
	defDur(&c.RateLimit.Window, DefaultRateLimitWindow, "rate_limit.window")
	switch {
	case c.NameBodyMaxLength < 0:
		bad("name_body_max_length must not be negative")
	case c.NameBodyMaxLength == 0:
		c.NameBodyMaxLength = DefaultNameBodyMaxLength
	}
	for k, v := range c.FieldMaxLength {
		if v <= 0 {
			bad("field_max_length.%s must be positive", k)
		}
	}
	if c.Roles == nil {
		c.Roles = DefaultRoles()
	}
	c.Roles = slices.Clone(c.Roles)
	for _, r := range c.Roles {
		if strings.TrimSpace(r) == "" {
			bad("roles must not hold an empty name")
		}
	}
	if c.MissingACLs == nil {
		c.MissingACLs = []string{}
	}
	c.MissingACLs = slices.Clone(c.MissingACLs)
	for _, a := range c.MissingACLs {
		if !slices.Contains(knownACLs, a) {
			bad("missing_acls: unknown ACL %q (known: %s)", a, strings.Join(knownACLs, ", "))
		}
	}
	if c.RateLimit.Requests < 0 {
		bad("rate_limit.requests must not be negative")
	}
	if c.Latency < 0 || c.LatencyJitter < 0 {
		bad("latency and latency_jitter must not be negative")
	}
	if c.ErrorRate < 0 || c.ErrorRate > 1 {
		bad("error_rate must be between 0 and 1")
	}
	if c.DropRate < 0 || c.DropRate > 1 {
		bad("drop_rate must be between 0 and 1")
	}
	switch {
	case c.ErrorStatus == 0:
		c.ErrorStatus = DefaultErrorStatus
	case c.ErrorStatus < 500 || c.ErrorStatus > 599:
		bad("error_status must be a 5xx status")
	}
	if c.DropResponses < 0 {
		bad("drop_responses must not be negative")
	}
	switch c.Outage.Mode {
	case OutageOff, Outage503, OutageReset:
	default:
		bad("outage.mode must be %q, %q or empty", Outage503, OutageReset)
	}
	switch {
	case c.Outage.For < 0:
		bad("outage.for must not be negative")
	case c.Outage.For > 0:
		c.Outage.Until = now.Add(time.Duration(c.Outage.For))
		c.Outage.For = 0
	}
	if c.Outage.Mode == OutageOff {
		c.Outage = Outage{}
	}
	return c, errors.Join(errs...)
}

// config returns the options' switches.
func (o Options) config() Config {
	return Config{
		AccessTokenTTL:           Duration(o.AccessTokenTTL),
		RefreshTokenTTL:          Duration(o.RefreshTokenTTL),
		RefreshOmitsRefreshToken: o.RefreshOmitsRefreshToken,
		IgnoreUnchanged:          o.IgnoreUnchanged,
		NoCoalesce:               o.NoCoalesce,
		UnmappedCorrelationID:    o.UnmappedCorrelationID,
		NameBodyMaxLength:        o.NameBodyMaxLength,
		StagingAsCreated:         o.StagingAsCreated,
		FieldMaxLength:           o.FieldMaxLength,
		Roles:                    o.Roles,
		MissingACLs:              o.MissingACLs,
		RateLimit:                o.RateLimit,
		Hibernating:              o.Hibernating,
		Latency:                  Duration(o.Latency),
		LatencyJitter:            Duration(o.LatencyJitter),
		ErrorRate:                o.ErrorRate,
		ErrorStatus:              o.ErrorStatus,
		Seed:                     o.Seed,
		Outage:                   o.Outage,
		DropResponses:            o.DropResponses,
		DropRate:                 o.DropRate,
	}
}

// Config returns the switches in effect. An outage that has ended reads as
// switched off.
func (s *Server) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireOutage(s.now())
	c := s.cfg
	c.Roles = slices.Clone(c.Roles)
	c.MissingACLs = slices.Clone(c.MissingACLs)
	if c.FieldMaxLength != nil {
		m := make(map[string]int, len(c.FieldMaxLength))
		for k, v := range c.FieldMaxLength {
			m[k] = v
		}
		c.FieldMaxLength = m
	}
	return c
}

// SetConfig replaces the switches (defaults filled in, Outage.For turned
// into Outage.Until) and restarts the random draws from c.Seed. It changes
// nothing when c is invalid. Tokens already issued keep their expiry.
func (s *Server) SetConfig(c Config) error {
	c, err := c.normalize(s.now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = c
	s.rng = newRand(c.Seed)
	return nil
}

// ResetFaults clears every fault: hibernation, latency, error rate,
// outage and dropped responses, and the rate-limit counters (the rule
// stays; it is instance configuration, as roles and ACLs are).
func (s *Server) ResetFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Hibernating = false
	s.cfg.Latency, s.cfg.LatencyJitter = 0, 0
	s.cfg.ErrorRate = 0
	s.cfg.Outage = Outage{}
	s.cfg.DropResponses, s.cfg.DropRate = 0, 0
	clear(s.rateCounts)
	s.rng = newRand(s.cfg.Seed)
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 0x1f0c5a17)) }

// expireOutage switches an outage off once it has ended; s.mu must be held.
func (s *Server) expireOutage(now time.Time) {
	if s.cfg.Outage.Mode != OutageOff && !s.cfg.Outage.Until.IsZero() && !now.Before(s.cfg.Outage.Until) {
		s.cfg.Outage = Outage{}
	}
}

// maxConfigBody bounds a PUT /sim/config body.
const maxConfigBody = 1 << 20

// handleSimConfig serves GET /sim/config (the switches) and PUT (or PATCH)
// /sim/config: the fields of the document replace the current values;
// fields it leaves out keep theirs (an object field such as outage or
// rate_limit is replaced whole).
func (s *Server) handleSimConfig(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.Config())
	case http.MethodPut, http.MethodPatch:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxConfigBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "Exception while reading request", err.Error())
			return
		}
		c, err := mergeConfig(s.Config(), body)
		if err == nil {
			err = s.SetConfig(c)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "Invalid configuration", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.Config())
	default:
		methodNotAllowed(w, r, http.MethodGet, http.MethodPut, http.MethodPatch)
	}
}

// mergeConfig applies a JSON document to base.
func mergeConfig(base Config, body []byte) (Config, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return base, fmt.Errorf("the body is not a JSON object: %v", err)
	}
	if _, ok := keys["outage"]; ok {
		base.Outage = Outage{}
	}
	if _, ok := keys["rate_limit"]; ok {
		base.RateLimit = RateLimit{}
	}
	if _, ok := keys["field_max_length"]; ok {
		base.FieldMaxLength = nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&base); err != nil {
		return base, err
	}
	return base, nil
}

// handleSimReset serves POST /sim/reset: [Server.ResetFaults].
func (s *Server) handleSimReset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, http.MethodPost)
		return
	}
	s.ResetFaults()
	writeJSON(w, http.StatusOK, s.Config())
}
