package ionixsim

import (
	"net/http"
	"strconv"
	"time"
)

// MaintenancePage is what [Server.ServeHTMLNext] answers, with HTTP 200 and
// Content-Type text/html, as a proxy in front of an API under maintenance
// does.
const MaintenancePage = `<!DOCTYPE html>
<html><head><title>IONIX - Scheduled maintenance</title></head>
<body><h1>We'll be back soon</h1>
<p>The IONIX portal is undergoing scheduled maintenance. Please try again in a few minutes.</p>
</body></html>
`

// faultDropped is Request.Fault of a request whose connection was closed
// unanswered.
const faultDropped = "dropped"

// faultGone is Request.Fault of a request whose client gave up during the
// latency (it is recorded with status 0).
const faultGone = "client gone during latency"

// fault is one pending fault.
type fault struct {
	status int  // answer this status (with a DRF error body)
	html   bool // answer 200 with MaintenancePage
	drop   bool // close the connection without an answer
}

// FailNext makes the next n list requests answer status with a DRF error
// body {"detail": ...}; a 429 carries Retry-After ([Options.RetryAfter]).
// A 2xx status serves that error body as if it were a page (a JSON answer
// that is not a page). Faults queue up: they apply in the order they were
// asked for, to list requests only, before authentication.
func (s *Server) FailNext(n int, status int) {
	s.addFaults(n, fault{status: status})
}

// ServeHTMLNext makes the next n list requests answer 200 with
// [MaintenancePage] (text/html).
func (s *Server) ServeHTMLNext(n int) {
	s.addFaults(n, fault{html: true})
}

// DropNext makes the next n list requests end with the connection closed
// without an answer (the client sees a network error).
func (s *Server) DropNext(n int) {
	s.addFaults(n, fault{drop: true})
}

// ClearFaults drops the faults not applied yet.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// PendingFaults returns how many faults are not applied yet.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// SetLatency delays every request by d (0 for none). A client that gives
// up during the delay gets no answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = max(d, 0)
}

func (s *Server) addFaults(n int, f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, f)
	}
}

// applyFault applies the first pending fault, if any; it reports whether it
// answered the request. flush records the request (before a dropped
// connection is closed).
func (s *Server) applyFault(w http.ResponseWriter, rec *Request, flush func()) bool {
	s.mu.Lock()
	if len(s.faults) == 0 {
		s.mu.Unlock()
		return false
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	s.mu.Unlock()

	switch {
	case f.drop:
		rec.Fault = faultDropped
		flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		_ = conn.Close()
	case f.html:
		rec.Fault = "maintenance page"
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(MaintenancePage))
	default:
		rec.Fault = "status " + strconv.Itoa(f.status)
		detail := http.StatusText(f.status)
		if f.status == http.StatusTooManyRequests {
			detail = "Request was throttled."
			if ra := s.opt.RetryAfter; ra > 0 {
				secs := int64((ra + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
				detail = "Request was throttled. Expected available in " + strconv.FormatInt(secs, 10) + " second"
				if secs != 1 {
					detail += "s"
				}
				detail += "."
			}
		}
		if detail == "" {
			detail = "Error " + strconv.Itoa(f.status)
		}
		writeDetail(w, f.status, detail)
	}
	return true
}
