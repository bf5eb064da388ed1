// Package monitoring serves what operators and orchestrators poll on http.listen:
// /healthz (200 while the process runs) and /readyz (200 only while every readiness
// check passes: NATS connected, a ServiceNow token held, sending not paused by a
// configuration error). Each answer is a small JSON document naming the checks.
package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Check is one readiness condition; Err returns nil when it holds.
type Check struct {
	Name string
	Err  func() error
}

// Server is the monitoring HTTP server.
type Server struct {
	mux    *http.ServeMux
	checks []Check
	log    zerolog.Logger
}

// New returns a server with /healthz and /readyz over the given checks.
func New(log zerolog.Logger, checks ...Check) *Server {
	s := &Server{mux: http.NewServeMux(), checks: checks, log: log}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

// Handle adds a handler (for example /metrics).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP serves the monitoring endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type status struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, status{Status: "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	st := status{Status: "ready", Checks: map[string]string{}}
	code := http.StatusOK
	for _, c := range s.checks {
		if err := c.Err(); err != nil {
			st.Checks[c.Name] = err.Error()
			st.Status, code = "not ready", http.StatusServiceUnavailable
		} else {
			st.Checks[c.Name] = "ok"
		}
	}
	writeJSON(w, code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ListenAndServe serves on listen until ctx ends. It returns once the listener is
// open (or failed) and serves in the background; the returned address is the one
// actually bound (useful with port 0).
func (s *Server) ListenAndServe(ctx context.Context, listen string) (net.Addr, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("monitoring server stopped")
		}
	}()
	return ln.Addr(), nil
}
