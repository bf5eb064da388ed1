package config

import "time"

// Config is the whole configuration of ionixsnow. The yaml tags are the key
// names in the file; the environment variable of a key is derived from them
// (IONIXSNOW_<SECTION>_<KEY>). Fields tagged secret:"true" are secrets: they
// may be given as <key>_file and are never printed.
//
// Config marshals (String, GoString, MarshalYAML, MarshalJSON) with its
// secrets redacted, so printing or logging a Config is safe.
type Config struct {
	NATS       NATS       `yaml:"nats"`
	ServiceNow ServiceNow `yaml:"servicenow"`
	Filter     Filter     `yaml:"filter"`
	Cap        Cap        `yaml:"cap"`
	Consumer   Consumer   `yaml:"consumer"`
	IONIX      IONIX      `yaml:"ionix"`
	HTTP       HTTP       `yaml:"http"`
	Log        Log        `yaml:"log"`
	Secrets    Secrets    `yaml:"secrets"`
}

// NATS is the connection to NATS JetStream and the names of the stream and
// the durable consumer. An empty URL means an embedded, in-process server
// listening on EmbeddedListen and storing under StoreDir.
type NATS struct {
	URL            string `yaml:"url"` // comma-separated nats://, tls://, ws:// or wss:// URLs; empty = embedded server
	CredsFile      string `yaml:"creds_file"`
	EmbeddedListen string `yaml:"embedded_listen"`
	// EmbeddedToken is the token the embedded server demands of every client
	// (and the one ionixsnow presents to it); required when EmbeddedListen is
	// not a loopback address, at least MinEmbeddedTokenLen characters.
	EmbeddedToken string `yaml:"embedded_token" secret:"true"`
	StoreDir      string `yaml:"store_dir"`
	Stream        string `yaml:"stream"`
	Consumer      string `yaml:"consumer"`
	Replicas      int    `yaml:"replicas"`
}

// ServiceNow is the customer's instance, its OAuth credentials (password
// grant with Username/Password, or refresh-token grant with RefreshToken) and
// the import set table the records go to.
type ServiceNow struct {
	InstanceURL  string `yaml:"instance_url"` // after Load: without a trailing slash
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password" secret:"true"`
	RefreshToken string `yaml:"refresh_token" secret:"true"`
	// AllowInsecureHTTP accepts a plain http instance_url on any host: for the
	// emulator in docker compose only, never for a real instance.
	AllowInsecureHTTP bool          `yaml:"allow_insecure_http"`
	ImportTable       string        `yaml:"import_table"`
	FieldPrefix       string        `yaml:"field_prefix"`
	Timeout           time.Duration `yaml:"timeout"`
	// CategoryOverrides maps an IONIX category (type) to the ServiceNow
	// category sent instead. Keys are as written; categories compare
	// case-insensitively (Load refuses two keys differing only in case).
	CategoryOverrides map[string]string `yaml:"category_overrides"`
	// ImpactOverrides maps an IONIX category to the impact sent ("1", "2"
	// or "3"), overriding the default of SPEC §4.
	ImpactOverrides map[string]string `yaml:"impact_overrides"`
}

// Filter selects the action items that are sent. Empty Categories means all.
type Filter struct {
	Categories       []string `yaml:"categories"`
	UrgencyThreshold float64  `yaml:"urgency_threshold"`
}

// Cap is the global budget: at most MaxPerWindow import requests in any
// sliding Window, summed over all replicas.
type Cap struct {
	MaxPerWindow int           `yaml:"max_per_window"`
	Window       time.Duration `yaml:"window"`
	// Pacing is how the window is spent (SPEC §10): PacingEven spreads the sends at
	// the cap's rate, one every Window/MaxPerWindow, after a burst of Burst for an
	// idle budget; PacingBurst sends as fast as the window allows.
	Pacing string `yaml:"pacing"`
	// Burst is how many sends go at once after idleness with even pacing; 0 is
	// MaxPerWindow/20 (at least 1): 50 at the default cap.
	Burst int `yaml:"burst"`
	// HighReserve is how many of the window's sends only High items may take, so
	// that one finds a slot when a backlog spent the rest (SPEC §10); 0 is
	// MaxPerWindow/50: 20 at the default cap, none below a cap of 50 (2 % at most,
	// so that a backlog without High items still uses 98 % of the cap). Below it,
	// pacing alone keeps a High item's wait to about one interval.
	HighReserve int `yaml:"high_reserve"`
}

// Reserve is the number of sends held for High items (HighReserve, or its default).
func (c Cap) Reserve() int {
	if c.HighReserve > 0 {
		return min(c.HighReserve, max(c.MaxPerWindow-1, 0))
	}
	return c.MaxPerWindow / 50
}

// Pacing modes of Cap.Pacing.
const (
	PacingEven  = "even"
	PacingBurst = "burst"
)

// PacedBurst is the burst of even pacing, 0 when sends are not paced.
func (c Cap) PacedBurst() int {
	switch {
	case c.Pacing == PacingBurst:
		return 0
	case c.Burst > 0:
		return c.Burst
	}
	return max(1, c.MaxPerWindow/20)
}

// Consumer tunes the pull consumer.
type Consumer struct {
	Concurrency    int           `yaml:"concurrency"`
	ResolveOnClose bool          `yaml:"resolve_on_close"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// AckWait is how long a delivered message may go unacknowledged before the
	// server redelivers it (a crashed replica's messages come back after it).
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxDeliver bounds the deliveries of one message; the last failed one
	// ends in the dead-letter stream. 0 means unlimited (the default: an
	// outage of any length dead-letters nothing).
	MaxDeliver int `yaml:"max_deliver"`
	// MaxAckPending bounds the messages held unacknowledged by all replicas
	// together; it must cover replicas × concurrency.
	MaxAckPending int `yaml:"max_ack_pending"`
	// DrainTimeout bounds the wait for posts in flight at shutdown (SIGTERM).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// ProcessConcurrency bounds the posts in flight at once over every tenant one
	// consume process serves (SPEC §9); tenants waiting for one take turns. Each
	// tenant posts at most Concurrency at once. Unused in the single-tenant form.
	ProcessConcurrency int `yaml:"process_concurrency"`
}

// IONIX is the IONIX API the poller reads.
type IONIX struct {
	APIURL       string        `yaml:"api_url"` // after Load: without a trailing slash
	Token        string        `yaml:"token" secret:"true"`
	Account      string        `yaml:"account"`
	PollInterval time.Duration `yaml:"poll_interval"`
}

// HTTP is the listener for /metrics, /healthz and /readyz; empty Listen
// disables it.
type HTTP struct {
	Listen string `yaml:"listen"`
}

// Log configures logging. Level is trace, debug, info, warn or error; Format
// is auto (console on a terminal, JSON otherwise), json or console. Load
// lower-cases both.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Secrets is where the key that encrypts tenant secrets at rest lives (SPEC §9).
type Secrets struct {
	// KeysetFile is the Tink keyset (`ionixsnow keys init`) that seals the secrets
	// of the tenants in the ionix_integrations bucket. It is itself the root
	// secret: mode 0600, a Kubernetes Secret in production. Needed by the tenant
	// and keys commands, and by consume when it serves tenants from the bucket.
	KeysetFile string `yaml:"keyset_file"`
}

// Needs are the requirements of a command beyond general consistency, for
// ValidateFor and LoadFor: consume and doctor need ServiceNow credentials,
// poll needs the IONIX token and account, publish needs neither.
type Needs struct {
	ServiceNow bool // instance_url, client_id, client_secret, and username+password or refresh_token
	IONIX      bool // api_url, token, account
}

// Default returns the defaults of SPEC §7.
func Default() Config {
	return Config{
		NATS: NATS{
			EmbeddedListen: "127.0.0.1:4222",
			StoreDir:       "./data/nats",
			Stream:         "IONIX_ACTION_ITEMS",
			Consumer:       "servicenow",
			Replicas:       1,
		},
		ServiceNow: ServiceNow{
			ImportTable: "u_ionix_action_item",
			FieldPrefix: "u_",
			Timeout:     30 * time.Second,
		},
		Filter: Filter{UrgencyThreshold: 1},
		Cap:    Cap{MaxPerWindow: 1000, Window: time.Hour, Pacing: PacingEven},
		Consumer: Consumer{
			Concurrency:        4,
			MaxBackoff:         5 * time.Minute,
			AckWait:            2 * time.Minute,
			MaxAckPending:      1000,
			ProcessConcurrency: 64,
			DrainTimeout:       30 * time.Second,
		},
		IONIX: IONIX{
			APIURL:       "https://api.portal.ionix.io",
			PollInterval: 15 * time.Minute,
		},
		HTTP: HTTP{Listen: "127.0.0.1:9090"},
		Log:  Log{Level: "info", Format: "auto"},
	}
}
