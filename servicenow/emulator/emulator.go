package emulator

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of [Options].
const (
	DefaultClientID          = "ionix"
	DefaultClientSecret      = "ionix"
	DefaultUsername          = "ionix"
	DefaultPassword          = "ionix"
	DefaultImportTable       = "u_ionix_action_item"
	DefaultFieldPrefix       = "u_"
	DefaultNameBodyMaxLength = 4000
	DefaultAccessTokenTTL    = 30 * time.Minute
	DefaultRefreshTokenTTL   = 100 * 24 * time.Hour
	DefaultMaxRequests       = 100000

	// CreatedMaxLength is the length ServiceNow gives every string column
	// of a staging table created by an inbound web service.
	CreatedMaxLength = 40
)

// Options configure a [Server]. The zero value is a set-up instance with the
// demo credentials (client ionix/ionix, user ionix/ionix).
type Options struct {
	ClientID, ClientSecret string // OAuth client; default "ionix"/"ionix"
	Username, Password     string // the integration user; default "ionix"/"ionix"

	ImportTable string // staging table of the inbound web service; default "u_ionix_action_item"
	FieldPrefix string // prefix of the staging columns; default "u_"

	// NameBodyMaxLength is the max length of the staging columns name and
	// body: 40 as ServiceNow creates them (CreatedMaxLength), 4000 after the
	// setup step of the integration guide. Default 4000.
	NameBodyMaxLength int

	// FieldMaxLength overrides the max length of staging columns, by name
	// without prefix. Defaults: name and body NameBodyMaxLength,
	// correlation_id 100 (as long as incident.correlation_id), close_notes
	// 4000, every other column CreatedMaxLength.
	FieldMaxLength map[string]int

	AccessTokenTTL  time.Duration // default 30m (expires_in 1799)
	RefreshTokenTTL time.Duration // default 100 days

	// RefreshOmitsRefreshToken makes refresh_token grants answer without a
	// refresh_token, as some instances do; the client must keep the old one.
	RefreshOmitsRefreshToken bool

	// IgnoreUnchanged makes a coalesced row that changes no incident field
	// answer "ignored" (status_message "No field values changed"), as a real
	// transform does. By default such a row answers "updated".
	IgnoreUnchanged bool

	// NoCoalesce emulates a transform map whose correlation_id field map
	// lacks the Coalesce tick (README setup step 4 half done): the
	// correlation id is copied to the incident, but every row inserts a new
	// incident. UnmappedCorrelationID emulates one without that field map:
	// the incident gets no correlation id, so nothing coalesces either.
	NoCoalesce            bool
	UnmappedCorrelationID bool

	// OnBefore, when set, runs for every staging row before the transform,
	// like an onBefore transform script. It sees the row's columns (with
	// prefix, after truncation). A non-empty status ("error", "ignored" or
	// "skipped") ends the transform with that status and message; no
	// incident is touched. It runs with the server's lock held and must not
	// call the server's methods.
	OnBefore func(row map[string]string) (status, message string)

	// StagingAsCreated gives every staging column the length ServiceNow
	// gives it when the inbound web service creates the table,
	// CreatedMaxLength (40), correlation_id and close_notes included: the
	// instance before the setup step. FieldMaxLength still overrides it.
	StagingAsCreated bool

	// Roles are the integration user's roles; nil means DefaultRoles
	// (ionix_integration and import_transformer), an empty non-nil slice no
	// role. RoleITIL lets the user read incidents, RoleAdmin passes every
	// check.
	Roles []string

	// MissingACLs names the ACLs the admin did not create (ACLCreate,
	// ACLWrite, ACLIncidentRead, ACLDictionaryRead); none by default.
	MissingACLs []string

	// RateLimit is a rate limit rule; none by default.
	RateLimit RateLimit

	// Hibernating makes every request (token and API) answer 200 with
	// HibernatingPage until switched off.
	Hibernating bool

	// Latency delays every request (token and API) by Latency plus a
	// uniform random part below LatencyJitter.
	Latency, LatencyJitter time.Duration

	// ErrorRate is the fraction of import requests answered with
	// ErrorStatus (default 500) before anything is written. The draws are
	// deterministic for a Seed and an order of requests.
	ErrorRate   float64
	ErrorStatus int
	Seed        int64

	// Outage makes the instance unreachable (503, or connections reset).
	Outage Outage

	// DropResponses drops the answers of the next N imports after their
	// commit: the incident is written, then the connection is closed
	// without an answer. DropRate does the same for a fraction of imports.
	DropResponses int
	DropRate      float64

	// MaxRequests bounds the request log; the oldest records are dropped
	// first. Default 100000.
	MaxRequests int

	Now func() time.Time // clock; default time.Now
}

func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.ClientID, DefaultClientID)
	def(&o.ClientSecret, DefaultClientSecret)
	def(&o.Username, DefaultUsername)
	def(&o.Password, DefaultPassword)
	def(&o.ImportTable, DefaultImportTable)
	def(&o.FieldPrefix, DefaultFieldPrefix)
	if o.NameBodyMaxLength <= 0 {
		o.NameBodyMaxLength = DefaultNameBodyMaxLength
	}
	if o.AccessTokenTTL <= 0 {
		o.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if o.RefreshTokenTTL <= 0 {
		o.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = DefaultMaxRequests
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server is the emulated instance. Create it with [New].
type Server struct {
	opt Options
	mux *http.ServeMux

	mu            sync.Mutex
	cfg           Config     // the switches
	rng           *rand.Rand // draws of jitter, error and drop rates
	rateCounts    map[string]*rateCount
	access        map[string]grant     // access token -> grant
	refresh       map[string]grant     // refresh token -> grant
	incidents     []*Incident          // insertion order
	byCorrelation map[string]*Incident // lower-cased correlation_id -> incident (coalesce)
	nextIncident  int                  // next INC number
	importSets    map[string]int       // UTC day -> ISET number
	nextImportSet int
	requests      []Request
	importCount   int
}

// New returns a server with the given options (defaults filled in).
// Invalid switches (see [Config.Validate]) are replaced by their defaults.
func New(o Options) *Server {
	o = o.withDefaults()
	cfg, err := o.config().normalize(o.Now())
	if err != nil {
		cfg = DefaultConfig()
	}
	s := &Server{
		opt:           o,
		cfg:           cfg,
		rng:           newRand(cfg.Seed),
		rateCounts:    map[string]*rateCount{},
		mux:           http.NewServeMux(),
		access:        map[string]grant{},
		refresh:       map[string]grant{},
		nextIncident:  10001,
		importSets:    map[string]int{},
		nextImportSet: 10001,
	}
	s.mux.HandleFunc("/oauth_token.do", s.handleToken)
	s.mux.HandleFunc("/api/now/import/{table}", s.authenticated(s.handleImport))
	s.mux.HandleFunc("/api/now/import/{table}/{sys_id}", s.authenticated(s.handleImportRecord))
	s.mux.HandleFunc("/api/now/table/{table}", s.authenticated(s.handleTable))
	s.mux.HandleFunc("/api/now/table/{table}/{sys_id}", s.authenticated(s.handleTableRecord))
	s.mux.HandleFunc("/sim/requests", s.handleSimRequests)
	s.mux.HandleFunc("/sim/incidents", s.handleSimIncidents)
	s.mux.HandleFunc("/sim/config", s.handleSimConfig)
	s.mux.HandleFunc("/sim/reset", s.handleSimReset)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", "")
	})
	return s
}

// Options returns the options the server was created with (defaults filled
// in); the switches in effect now are [Server.Config].
func (s *Server) Options() Options { return s.opt }

func (s *Server) now() time.Time { return s.opt.Now() }

// ServeHTTP serves the emulated instance and records the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/sim/") {
		s.mux.ServeHTTP(w, r)
		return
	}
	rec := &Request{At: s.now(), Method: r.Method, Path: r.URL.Path, Query: redactQuery(r.URL.RawQuery)}
	sw := &statusWriter{ResponseWriter: w}
	var panicked bool
	// flush records the request once: when the handler ends, or before an
	// aborted connection is closed, so the log is complete by the time the
	// client sees the connection go.
	rec.flush = sync.OnceFunc(func() {
		switch {
		case rec.aborted || panicked:
			rec.Status = 0 // no answer
		case sw.status == 0:
			rec.Status = http.StatusOK
		default:
			rec.Status = sw.status
		}
		s.addRequest(*rec)
	})
	defer func() {
		p := recover()
		panicked = p != nil
		rec.flush()
		if p != nil {
			panic(p)
		}
	}()
	r, done := s.preFaults(sw, r, rec)
	if done {
		return
	}
	s.mux.ServeHTTP(sw, r.WithContext(withRecord(r.Context(), rec)))
}

// redactQuery replaces secret values in a query string (credentials sent
// where they do not belong); an unparsable query is not recorded.
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return ""
	}
	changed := false
	for k, vs := range q {
		if secretFormFields[k] || strings.EqualFold(k, "access_token") {
			for i := range vs {
				vs[i] = Redacted
			}
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return q.Encode()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (Hijack, Flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// writeJSON writes v with the given status as ServiceNow does
// (application/json;charset=UTF-8).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes ServiceNow's REST error body
// {"error":{"message":...,"detail":...},"status":"failure"}; an empty detail
// is written as null, as ServiceNow does.
func writeError(w http.ResponseWriter, status int, message, detail string) {
	var d any
	if detail != "" {
		d = detail
	}
	writeJSON(w, status, map[string]any{
		"error":  map[string]any{"message": message, "detail": d},
		"status": "failure",
	})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, "Method not Supported",
		"HTTP method "+r.Method+" is not supported by this resource")
}
