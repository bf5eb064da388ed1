package main

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
)

// poisonProxy forwards loopback TCP to a NATS server, with two faults: poison makes
// every open connection look closed for good by the server (a protocol error the
// client does not reconnect after: the over-long control line an oversized id once
// caused); cut drops every connection and refuses new ones until heal (a network
// blip the client reconnects after).
type poisonProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	clients []net.Conn // the client's side of each connection
	servers []net.Conn // the server's side
	refused bool
}

func startPoisonProxy(t *testing.T, target string) *poisonProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &poisonProxy{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			refused := p.refused
			p.mu.Unlock()
			if refused {
				_ = c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.clients, p.servers = append(p.clients, c), append(p.servers, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
	return p
}

func (p *poisonProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *poisonProxy) poison() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		_, _ = c.Write([]byte("-ERR 'Maximum Control Line Exceeded'\r\n"))
		_ = c.Close()
	}
	p.clients, p.servers = nil, nil
}

func (p *poisonProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = true
	for _, c := range append(p.clients, p.servers...) {
		_ = c.Close()
	}
	p.clients, p.servers = nil, nil
}

func (p *poisonProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = false
}

// TestConnectionClosedByTheServerIsEstablishedAgain: nats.go does not reconnect
// after the server closes a connection on a protocol error; consume notices
// (watchLost) and opens a new one (redial) that works.
func TestConnectionClosedByTheServerIsEstablishedAgain(t *testing.T) {
	srv := natstest.Start(t)
	proxy := startPoisonProxy(t, srv.URL()[len("nats://"):])
	conn, err := connectNATS(config.NATS{URL: proxy.url()}, zerolog.Nop(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	lost := make(chan error, 1)
	conn.watchLost(func(err error) { lost <- err })
	proxy.poison()
	select {
	case err := <-lost:
		if !errors.Is(err, errConnectionLost) {
			t.Fatalf("lost with %v, want errConnectionLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the closed connection was not noticed (status %s)", conn.nc.Status())
	}
	if st := conn.nc.Status(); st != nats.CLOSED {
		t.Fatalf("status %s after the protocol error, want CLOSED (nats.go gives up on it)", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next, err := conn.redial(ctx, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Close)
	if _, err := next.js.AccountInfo(ctx); err != nil {
		t.Fatalf("the new connection does not work: %v", err)
	}
	// Closing on purpose is not a loss.
	quiet := make(chan error, 1)
	next.watchLost(func(err error) { quiet <- err })
	next.Close()
	select {
	case err := <-quiet:
		t.Errorf("Close reported as a loss: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWrongEmbeddedToken: a client with another nats.embedded_token than the embedded
// server it finds is told so, not that no server listens.
func TestWrongEmbeddedToken(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", Token: "right-token-0123456789", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	listen := strings.TrimPrefix(srv.URL(), "nats://")
	_, err = connectNATS(config.NATS{EmbeddedListen: listen, EmbeddedToken: "wrong-token-0123456789"}, zerolog.Nop(), false)
	if err == nil || !strings.Contains(err.Error(), "nats.embedded_token") || !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("err = %v, want one naming nats.embedded_token", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("the token is shown: %v", err)
	}
	conn, err := connectNATS(config.NATS{EmbeddedListen: listen, EmbeddedToken: "right-token-0123456789"}, zerolog.Nop(), false)
	if err != nil {
		t.Fatalf("with the right token: %v", err)
	}
	conn.Close()
}
