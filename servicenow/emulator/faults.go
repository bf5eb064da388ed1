package emulator

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// HibernatingPage is what a hibernating instance answers to every request,
// with HTTP 200 and Content-Type text/html.
const HibernatingPage = `<html><head><title>Instance Hibernating page</title></head>` +
	`<body><h1>Your instance is hibernating</h1>` +
	`<p>This instance is hibernating. Sign in to the developer portal ` +
	`(https://developer.servicenow.com) to wake it up.</p></body></html>`

// rateLimitRuleID is the sys_id of the emulated rate limit rule
// (X-RateLimit-Rule).
const rateLimitRuleID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"

// rateCount is one user's count in the current rate-limit window.
type rateCount struct {
	count int
	reset time.Time
}

// preFaults applies the faults that hit every request before it is
// handled: outage, hibernation and latency. It reports whether the request
// is finished; if not, it returns the request to handle (with its body read
// ahead during latency, so that the server notices a client that gives
// up).
func (s *Server) preFaults(w http.ResponseWriter, r *http.Request, rec *Request) (*http.Request, bool) {
	now := s.now()
	s.mu.Lock()
	s.expireOutage(now)
	outage, hibernating := s.cfg.Outage, s.cfg.Hibernating
	delay := time.Duration(s.cfg.Latency)
	if j := time.Duration(s.cfg.LatencyJitter); j > 0 {
		delay += time.Duration(s.rng.Int64N(int64(j)))
	}
	s.mu.Unlock()

	switch outage.Mode {
	case Outage503:
		rec.addFault("outage: 503")
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable", "The instance is not available")
		return r, true
	case OutageReset:
		rec.addFault("outage: connection reset")
		abort(w, rec, true)
		return r, true
	}
	if hibernating {
		rec.addFault("hibernating")
		w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(HibernatingPage))
		return r, true
	}
	if delay > 0 {
		rec.addFault("latency " + delay.Round(time.Millisecond).String())
		if r.Body != nil && r.Body != http.NoBody {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxImportBody))
			if err != nil {
				rec.addFault("unreadable body")
				rec.aborted = true
				return r, true
			}
			r = r.Clone(r.Context())
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			rec.addFault("client gone during latency")
			rec.aborted = true
			return r, true
		}
	}
	return r, false
}

// abort closes the connection without an answer (reset: with a TCP reset),
// through http.Hijacker; where the writer cannot be hijacked it aborts the
// handler, which makes the server close the connection.
func abort(w http.ResponseWriter, rec *Request, reset bool) {
	rec.aborted = true
	if rec.flush != nil {
		rec.flush()
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if reset {
		nc := conn
		if tc, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS
			nc = tc.NetConn()
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	_ = conn.Close()
}

// rateLimited applies the rate limit rule to an authenticated API request
// of user; it reports whether the request was refused (429).
func (s *Server) rateLimited(w http.ResponseWriter, rec *Request, user string) bool {
	now := s.now()
	s.mu.Lock()
	rule := s.cfg.RateLimit
	if rule.Requests <= 0 {
		s.mu.Unlock()
		return false
	}
	rc := s.rateCounts[user]
	if rc == nil || !now.Before(rc.reset) {
		rc = &rateCount{reset: now.Add(time.Duration(rule.Window))}
		s.rateCounts[user] = rc
	}
	over := rc.count >= rule.Requests
	if !over {
		rc.count++
	}
	reset := rc.reset
	s.mu.Unlock()

	resetUnix := reset.Unix()
	if reset.Nanosecond() > 0 {
		resetUnix++
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(rule.Requests))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(resetUnix, 10))
	w.Header().Set("X-RateLimit-Rule", rateLimitRuleID)
	if !over {
		return false
	}
	wait := reset.Sub(now)
	secs := int((wait + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	rec.RetryAfter = secs
	rec.addFault("rate limited")
	writeError(w, http.StatusTooManyRequests, "Too Many Requests",
		fmt.Sprintf("Rate limit of %d requests per %s exceeded for user %s; retry after %d seconds",
			rule.Requests, time.Duration(rule.Window), user, secs))
	return true
}

// accessRights is what the user may do, from the roles and ACLs in effect.
type accessRights struct {
	roles       []string
	missingACLs []string
}

func (s *Server) rights() accessRights {
	s.mu.Lock()
	defer s.mu.Unlock()
	return accessRights{roles: slices.Clone(s.cfg.Roles), missingACLs: slices.Clone(s.cfg.MissingACLs)}
}

func (a accessRights) has(role string) bool {
	return slices.Contains(a.roles, RoleAdmin) || slices.Contains(a.roles, role)
}

// acl reports whether the ACL exists and grants the user (role
// ionix_integration) the operation; admin passes every ACL.
func (a accessRights) acl(name string) bool {
	if slices.Contains(a.roles, RoleAdmin) {
		return true
	}
	return !slices.Contains(a.missingACLs, name) && slices.Contains(a.roles, RoleIntegration)
}

// importDenied returns why the user may not use the Import Set API on the
// staging table, with ServiceNow's message and detail; "" when allowed.
// The REST endpoint ACL of the Import Set API wants import_transformer;
// inserting the staging row wants the create ACL and updating it with the
// transform's outcome the write ACL (both for role ionix_integration).
func (a accessRights) importDenied() (why, message, detail string) {
	switch {
	case !a.has(RoleImportTransformer):
		return "role import_transformer missing", "User Not Authorized", "Failed API level ACL Validation"
	case !a.acl(ACLCreate):
		return "create ACL on the staging table denies", "Operation Failed", "ACL Exception Insert Failed due to security constraints"
	case !a.acl(ACLWrite):
		return "write ACL on the staging table denies", "Operation Failed", "ACL Exception Update Failed due to security constraints"
	}
	return "", "", ""
}

// readDenied reports whether the user may not read table through the
// Table API: incident wants itil (or the optional read ACL), sys_dictionary
// personalize_dictionary (or its read ACL).
func (a accessRights) readDenied(table string) bool {
	switch table {
	case "incident":
		return !a.has(RoleITIL) && !a.acl(ACLIncidentRead)
	case "sys_dictionary":
		return !a.has(RolePersonalizeDictionary) && !a.acl(ACLDictionaryRead)
	}
	return false
}

// injectedError returns the status of an injected import error, or 0.
func (s *Server) injectedError() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.ErrorRate > 0 && s.rng.Float64() < s.cfg.ErrorRate {
		return s.cfg.ErrorStatus
	}
	return 0
}

// dropResponse reports whether a committed import's answer is to be
// dropped.
func (s *Server) dropResponse() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.DropResponses > 0 {
		s.cfg.DropResponses--
		return true
	}
	return s.cfg.DropRate > 0 && s.rng.Float64() < s.cfg.DropRate
}
