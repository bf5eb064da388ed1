package main

// The tenant fleet's doorbell across a reconnection: items published while consume's
// connection was down rang nothing, so every tenant is rung once it is connected again.

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
)

// An item published while consume's connection is reconnecting (a NATS node restart, a
// network blip) is stored but rings nothing; it is imported once consume is connected
// again (every tenant is rung then), not after IdleRecheck.
func TestDoorbellItemsPublishedWhileReconnectingAreRung(t *testing.T) {
	t.Parallel()
	h := rvStart(t) // h.conn: direct, for puts and publishes
	proxy := startPoisonProxy(t, h.cfg.NATS.URL[len("nats://"):])
	pcfg := h.cfg.NATS
	pcfg.URL = proxy.url()
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
