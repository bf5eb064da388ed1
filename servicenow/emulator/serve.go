package emulator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// shutdownGrace is how long in-flight requests may finish after ctx is done.
const shutdownGrace = 5 * time.Second

// ListenAndServe listens on addr and serves s until ctx is done, then shuts
// down gracefully and returns nil. It is what `ionixsnow servicenow-sim`
// runs.
func ListenAndServe(ctx context.Context, addr string, s *Server, log zerolog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, s, log)
}

// Serve serves s on ln until ctx is done (see [ListenAndServe]); it closes
// ln. Use it with a listener on port 0 to learn the address first.
func Serve(ctx context.Context, ln net.Listener, s *Server, log zerolog.Logger) error {
	srv := &http.Server{
		Handler:           logRequests(s, log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info().Str("addr", ln.Addr().String()).Str("import_table", s.opt.ImportTable).
		Msg("ServiceNow emulator listening")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	log.Info().Msg("ServiceNow emulator stopped")
	return err
}

// logRequests logs every request at debug level: method, path and status
// (never headers, bodies or query strings, which may carry credentials).
func logRequests(next http.Handler, log zerolog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).
			Dur("duration", time.Since(start)).Msg("request")
	})
}
