package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/topology"
)

func osLookupEnv(k string) (string, bool) { return os.LookupEnv(k) }

// newLogger builds the logger of the log section: JSON, or console on a terminal.
func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil || c.Level == "" {
		level = zerolog.InfoLevel
	}
	out := w
	if c.Format == "console" || (c.Format == "auto" || c.Format == "") && isTerminal(w) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// natsConn is a connection to NATS, and the embedded server behind it if one was
// started for it.
type natsConn struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	server *embedded.Server
	// url and cfg are what the connection was opened with (redial).
	url string
	cfg config.NATS
	// closing is set by Close: the connection's end is ours, not the server's.
	closing atomic.Bool
}

func (c *natsConn) Close() {
	c.closing.Store(true)
	if c.nc != nil {
		_ = c.nc.Drain()
		c.nc.Close()
	}
	if c.server != nil {
		c.server.Stop()
	}
}

// connectNATS connects to nats.url, or with no url to the embedded server: an
// already running one on nats.embedded_listen (another ionixsnow process), or else
// one started here over nats.store_dir.
func connectNATS(cfg config.NATS, log zerolog.Logger, startEmbedded bool) (*natsConn, error) {
	url := cfg.URL
	var srv *embedded.Server
	if url == "" {
		url = "nats://" + cfg.EmbeddedListen
		nc, err := dial(url, cfg, log)
		if err == nil {
			return finishConn(nc, nil, url, cfg)
		}
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("the embedded server listening on %s refused the connection: nats.embedded_token is not the one it was started with: %w", cfg.EmbeddedListen, err)
		}
		if !startEmbedded {
			return nil, fmt.Errorf("no nats.url configured and no embedded server listening on %s", cfg.EmbeddedListen)
		}
		dir, err := filepath.Abs(cfg.StoreDir)
		if err != nil {
			return nil, fmt.Errorf("nats.store_dir: %w", err)
		}
		srv, err = embedded.Start(embedded.Options{Listen: cfg.EmbeddedListen, Token: cfg.EmbeddedToken, StoreDir: dir})
		if err != nil {
			return nil, err
		}
		log.Info().Str("listen", srv.URL()).Str("store_dir", dir).Msg("started embedded JetStream server")
		url = srv.URL()
	}
	nc, err := dial(url, cfg, log)
	if err != nil {
		if srv != nil {
			srv.Stop()
		}
		return nil, err
	}
	return finishConn(nc, srv, url, cfg)
}

func finishConn(nc *nats.Conn, srv *embedded.Server, url string, cfg config.NATS) (*natsConn, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		if srv != nil {
			srv.Stop()
		}
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &natsConn{nc: nc, js: js, server: srv, url: url, cfg: cfg}, nil
}

func dial(url string, cfg config.NATS, log zerolog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("ionixsnow"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.URL == "" && cfg.EmbeddedToken != "" { // the embedded server's token
		opts = append(opts, nats.Token(cfg.EmbeddedToken))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(url), err)
	}
	return nc, nil
}

// redactURL drops any user info from a NATS URL list before it is shown.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "[redacted]" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// topologyOptions derives the JetStream topology from the configuration.
func topologyOptions(cfg config.Config) topology.Options {
	return tenantTopologyOptions(cfg, "")
}

// tenantTopologyOptions are the topology options of tenant t (SPEC §9; "" or
// "default": the single-tenant form) with cfg, the deployment's configuration with
// the tenant's settings in it.
func tenantTopologyOptions(cfg config.Config, t string) topology.Options {
	names := topology.DefaultNames()
	names.Stream = cfg.NATS.Stream
	names.Consumer = cfg.NATS.Consumer
	names = names.ForTenant(t)
	return topology.Options{
		Names:          names,
		Replicas:       cfg.NATS.Replicas,
		FilterSubjects: filterOf(cfg).FilterSubjects(names.ItemSubjectPrefix()),
		MaxAckPending:  cfg.Consumer.MaxAckPending,
		AckWait:        cfg.Consumer.AckWait,
		MaxDeliver:     cfg.Consumer.MaxDeliver,
	}
}

func filterOf(cfg config.Config) mapping.Filter {
	return mapping.Filter{Categories: cfg.Filter.Categories, UrgencyThreshold: cfg.Filter.UrgencyThreshold}
}

func mappingOf(cfg config.Config) mapping.Options {
	o := mapping.DefaultOptions()
	o.FieldPrefix = cfg.ServiceNow.FieldPrefix
	o.CategoryOverrides = cfg.ServiceNow.CategoryOverrides
	o.ImpactOverrides = cfg.ServiceNow.ImpactOverrides
	return o
}

// Setting up the topology: how long ensureTopology keeps trying, and how long it waits
// between attempts (doubling from the first to the longest, each shortened by up to a
// half at random so that replicas that failed together do not retry together).
const (
	topologySetupTimeout = 30 * time.Second
	firstSetupRetry      = 250 * time.Millisecond
	longestSetupRetry    = 2 * time.Second
)

// ensureTopology creates the topology, retrying for up to topologySetupTimeout while
// topology.Starting says JetStream is not ready (see retryWhileStarting).
func ensureTopology(ctx context.Context, js jetstream.JetStream, o topology.Options) (*topology.Topology, error) {
	var t *topology.Topology
	err := retryWhileStarting(ctx, func(ctx context.Context) (err error) {
		t, err = topology.Ensure(ctx, js, o)
		return err
	})
	return t, err
}

// retryWhileStarting calls setUp until it succeeds, fails for a reason other than
// topology.Starting, or topologySetupTimeout has passed: a server or cluster may still
// be starting, or a request may have been left unanswered while other replicas set up
// the same objects. Each request has its own timeout (topology.Options.RequestTimeout),
// so one unanswered request does not use up the whole setup time.
func retryWhileStarting(ctx context.Context, setUp func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, topologySetupTimeout)
	defer cancel()
	wait := firstSetupRetry
	for {
		err := setUp(ctx)
		if err == nil || !topology.Starting(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w while retrying: %w", ctx.Err(), err)
		case <-time.After(wait/2 + rand.N(wait/2+1)):
		}
		wait = min(2*wait, longestSetupRetry)
	}
}
