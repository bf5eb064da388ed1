// Package natstest gives tests a real, in-process JetStream server on a random
// loopback port with a temporary store, and connections to it, cleaned up when the
// test ends.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded"
)

// Start starts a JetStream server for the test and stops it at the end.
func Start(tb testing.TB) *embedded.Server {
	tb.Helper()
	srv, err := embedded.Start(embedded.Options{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Stop)
	return srv
}

// Connect opens a connection to url for the test and returns its JetStream context.
func Connect(tb testing.TB, url string) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}
