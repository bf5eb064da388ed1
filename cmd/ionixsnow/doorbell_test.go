package main

// The tenant fleet's doorbell across a reconnection: items published while consume's
// connection was down rang nothing, so every tenant is rung once it is connected again.

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
)

// cutProxy forwards TCP to target; cut closes every connection and refuses new ones
// until heal.
type cutProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	conns   []net.Conn
	refused bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
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
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused = false
}

// An item published while consume's connection is reconnecting (a NATS node restart, a
// network blip) is stored but rings nothing; it is imported once consume is connected
// again (every tenant is rung then), not after IdleRecheck.
func TestDoorbellItemsPublishedWhileReconnectingAreRung(t *testing.T) {
	t.Parallel()
	h := rvStart(t) // h.conn: direct, for puts and publishes
	proxy := startCutProxy(t, h.cfg.NATS.URL[len("nats://"):])
	pcfg := h.cfg.NATS
	pcfg.URL = "nats://" + proxy.ln.Addr().String()
	served, err := connectNATS(pcfg, h.log, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(served.Close)
	acme := rvNewInstance(t, "acme")
	h.put("acme", acme.settings(), true)
	h.publish("acme", ionix.EventOpened, "Vulnerability", "before")
	hs := *h
	hs.conn = served
	hs.serve(nil)
	testkit.WaitForDiag(t, 20*time.Second, "acme's first item", func() bool { return len(acme.sim.Incidents()) >= 1 },
		func() string { return h.logs.String() })

	proxy.cut()
	testkit.WaitFor(t, 10*time.Second, "consume's connection reconnecting", func() bool {
		return served.nc.Status() == nats.RECONNECTING
	})
	h.publish("acme", ionix.EventOpened, "Vulnerability", "during")
	proxy.heal()
	testkit.WaitFor(t, 10*time.Second, "consume's connection back", func() bool { return served.nc.Status() == nats.CONNECTED })
	start := time.Now()
	testkit.WaitForDiag(t, 15*time.Second, "the item published during the reconnection", func() bool { return len(acme.sim.Incidents()) >= 2 },
		func() string { return "after " + time.Since(start).String() })
}

var _ = zerolog.Nop
var _ = config.Default
