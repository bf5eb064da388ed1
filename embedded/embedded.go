// Package embedded runs a JetStream-enabled nats-server inside the process. It is the
// default when no nats.url is configured (`consume`, `demo`, `bench`) and what every
// test uses in place of an external server. It listens on loopback unless given a
// token that every client must present.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ionix/ionixsnow/remote"
)

// ErrNotReady is returned when the server does not accept connections in time.
var ErrNotReady = errors.New("embedded nats-server not ready")

// ErrOpenListen is returned by Start for a listen address beyond loopback
// without a Token: such a server would let anyone on the network read and
// publish.
var ErrOpenListen = errors.New("embedded nats-server: a listen address beyond loopback needs a token")

// Options configures the embedded server.
type Options struct {
	// Listen is host:port; port 0 (or "") picks a free port, an empty host
	// is 127.0.0.1. A host other than loopback needs Token.
	Listen string
	// Token, when set, is demanded of every client (nats.Token on their side).
	Token string
	// StoreDir is the JetStream store directory.
	StoreDir string
	// ServerName names the server (needed in a cluster); empty lets the server choose.
	ServerName string
	// Cluster, when set, joins a cluster: its name, listen address and routes.
	Cluster *ClusterOptions
	// ReadyTimeout bounds the wait for the server to accept connections (default 10s).
	ReadyTimeout time.Duration
}

// ClusterOptions joins the server to a cluster over loopback routes.
type ClusterOptions struct {
	Name   string
	Listen string   // host:port of this node's route listener
	Routes []string // host:port of every node's route listener (this one may be included)
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	opts *server.Options
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	sopts, err := serverOptions(o)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	ns.Start()
	wait := o.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w after %s (listen %s)", ErrNotReady, wait, o.Listen)
	}
	return &Server{Server: ns, opts: sopts}, nil
}

func serverOptions(o Options) (*server.Options, error) {
	host, port, err := splitListen(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server listen %q: %w", o.Listen, err)
	}
	if o.Token == "" && !remote.IsLoopback(host) {
		return nil, fmt.Errorf("%w (listen %q)", ErrOpenListen, o.Listen)
	}
	sopts := &server.Options{
		ServerName:    o.ServerName,
		Host:          host,
		Port:          port,
		Authorization: o.Token,
		JetStream:     true,
		StoreDir:      o.StoreDir,
		NoSigs:        true,
		NoLog:         true,
	}
	if c := o.Cluster; c != nil {
		chost, cport, err := splitListen(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server cluster listen %q: %w", c.Listen, err)
		}
		if !remote.IsLoopback(chost) { // routes have no credentials here
			return nil, fmt.Errorf("%w (cluster listen %q: routes stay on loopback)", ErrOpenListen, c.Listen)
		}
		sopts.Cluster = server.ClusterOpts{Name: c.Name, Host: chost, Port: cport}
		sopts.Routes = server.RoutesFromStr(routeURLs(c.Routes))
	}
	return sopts, nil
}

func routeURLs(routes []string) string {
	s := ""
	for i, r := range routes {
		if i > 0 {
			s += ","
		}
		s += "nats-route://" + r
	}
	return s
}

func splitListen(listen string) (string, int, error) {
	if listen == "" {
		return "127.0.0.1", server.RANDOM_PORT, nil
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// URL is the client URL of the running server.
func (s *Server) URL() string { return s.ClientURL() }

// Stop shuts the server down and waits for it to finish.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
