package ionixsim

import (
	"net/url"
	"slices"
	"time"
)

// maxRequests bounds the request log; the oldest records are dropped first.
const maxRequests = 100000

// Request is one request the server saw.
type Request struct {
	At     time.Time  // arrival
	Method string     // GET, ...
	Path   string     // URL path
	Query  url.Values // query parameters (limit, offset, ...)
	Status int        // status answered; 0 when nothing was answered (dropped, client gone)
	Fault  string     // the fault applied, if any: "status 503", "maintenance page", "dropped", "client gone during latency"
}

// Requests returns the requests seen so far, in order of completion.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Query = cloneValues(r.Query)
		out[i] = r
	}
	return out
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= maxRequests {
		s.requests = slices.Delete(s.requests, 0, len(s.requests)-maxRequests+1)
	}
	s.requests = append(s.requests, r)
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
