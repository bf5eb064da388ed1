package emulator

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"time"
)

// Redacted replaces secret values (client_secret, password, refresh_token,
// access tokens) in the request log.
const Redacted = "[REDACTED]"

// Request is one request the server answered, as recorded in the request
// log. Secrets are never recorded: form fields that carry them hold
// [Redacted] and the Authorization header is not recorded at all.
type Request struct {
	At     time.Time `json:"at"` // when it arrived, by the server's clock
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"` // raw query string (Table API reads)
	Status int       `json:"status"`          // 0: the connection was closed without an answer

	// Fields are the fields of an import (as strings, before truncation) or
	// of a token request (secrets redacted).
	Fields map[string]string `json:"fields,omitempty"`

	ImportStatus string `json:"import_status,omitempty"` // inserted, updated, ignored, skipped, error
	Number       string `json:"number,omitempty"`        // incident inserted or updated
	Note         string `json:"note,omitempty"`          // why a request failed, e.g. "wrong client_secret"

	// Fault names the faults applied, "; "-separated: "outage: 503",
	// "outage: connection reset", "hibernating", "latency 120ms",
	// "rate limited", "injected error 503", "response dropped after commit".
	Fault      string `json:"fault,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"` // Retry-After of a 429, in seconds

	aborted bool   // the connection was closed without an answer (Status 0)
	flush   func() // records the request (once)
}

func (r *Request) addFault(f string) {
	if r.Fault != "" {
		r.Fault += "; "
	}
	r.Fault += f
}

// Incident is an incident record of the emulated instance.
type Incident struct {
	SysID            string `json:"sys_id"`
	Number           string `json:"number"`
	ShortDescription string `json:"short_description"`
	Description      string `json:"description"`
	Category         string `json:"category"`
	Impact           string `json:"impact"`
	Urgency          string `json:"urgency"`
	Priority         string `json:"priority"`
	State            string `json:"state"`
	OpenedAt         string `json:"opened_at"` // "YYYY-MM-DD HH:MM:SS" UTC
	CorrelationID    string `json:"correlation_id"`
	CloseNotes       string `json:"close_notes"`

	Inserts   int       `json:"inserts"` // import rows that inserted it (1)
	Updates   int       `json:"updates"` // import rows that updated it (coalesce)
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type recordKey struct{}

func withRecord(ctx context.Context, rec *Request) context.Context {
	return context.WithValue(ctx, recordKey{}, rec)
}

// record returns the log record of the request being served; a throwaway
// one when there is none.
func record(r *http.Request) *Request {
	if rec, ok := r.Context().Value(recordKey{}).(*Request); ok {
		return rec
	}
	return &Request{}
}

func (s *Server) addRequest(rec Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if isImportRequest(rec) {
		s.importCount++
	}
	if len(s.requests) >= s.opt.MaxRequests {
		n := len(s.requests) - s.opt.MaxRequests + 1
		s.requests = append(s.requests[:0], s.requests[n:]...)
	}
	s.requests = append(s.requests, rec)
}

// Requests returns a copy of the request log, oldest first. Requests to
// /sim/ are not recorded.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Fields = maps.Clone(r.Fields)
		out[i] = r
	}
	return out
}

// isImportRequest reports whether rec is a request to import (anything
// sent to /api/now/import/ but a GET of one staging row, which is what the
// client's probe sends).
func isImportRequest(rec Request) bool {
	rest, ok := strings.CutPrefix(rec.Path, "/api/now/import/")
	return ok && !(rec.Method == http.MethodGet && strings.Contains(strings.Trim(rest, "/"), "/"))
}

// ImportCount is the number of requests made to the Import Set API
// (/api/now/import/...), whatever their outcome, including those refused
// for authentication or by a fault, but not GETs of one staging row (the
// client's probe). It counts past the bound of the request log.
func (s *Server) ImportCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.importCount
}

// Incidents returns a snapshot of the incidents, in insertion order.
func (s *Server) Incidents() []Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Incident, len(s.incidents))
	for i, inc := range s.incidents {
		out[i] = *inc
	}
	return out
}

// DeleteIncident deletes the incident with the given number (or sys_id) and
// reports whether there was one.
func (s *Server) DeleteIncident(number string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, inc := range s.incidents {
		if inc.Number == number || inc.SysID == number {
			s.incidents = append(s.incidents[:i], s.incidents[i+1:]...)
			if key := strings.ToLower(inc.CorrelationID); s.byCorrelation[key] == inc {
				delete(s.byCorrelation, key)
			}
			return true
		}
	}
	return false
}

func (s *Server) handleSimRequests(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, http.MethodGet)
		return
	}
	writeJSON(w, http.StatusOK, s.Requests())
}

func (s *Server) handleSimIncidents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, http.MethodGet)
		return
	}
	writeJSON(w, http.StatusOK, s.Incidents())
}
