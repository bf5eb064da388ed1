package embedded_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/embedded"
)

// TestListenBeyondLoopbackNeedsToken: the server refuses to listen beyond
// loopback without a token; with one, only clients presenting it get in.
func TestListenBeyondLoopbackNeedsToken(t *testing.T) {
	const token = "embedded-test-token-5e0c7a9d"
	tests := []struct {
		name    string
		opts    embedded.Options
		refused bool
	}{
		{"loopback without a token", embedded.Options{Listen: "127.0.0.1:0"}, false},
		{"default listen", embedded.Options{}, false},
		{"every interface without a token", embedded.Options{Listen: "0.0.0.0:0"}, true},
		{"every IPv6 interface without a token", embedded.Options{Listen: "[::]:0"}, true},
		{"a cluster route beyond loopback", embedded.Options{Token: token, Cluster: &embedded.ClusterOptions{Name: "c", Listen: "0.0.0.0:0"}}, true},
		{"every interface with a token", embedded.Options{Listen: "0.0.0.0:0", Token: token}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.StoreDir = t.TempDir()
			srv, err := embedded.Start(tt.opts)
			if tt.refused {
				if !errors.Is(err, embedded.ErrOpenListen) {
					if err == nil {
						srv.Stop()
					}
					t.Fatalf("Start = %v, want ErrOpenListen", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Stop)
			_, port, err := net.SplitHostPort(srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			url := "nats://127.0.0.1:" + port
			if tt.opts.Token == "" {
				connect(t, url).Close()
				return
			}
			if nc, err := nats.Connect(url, nats.Timeout(5*time.Second)); err == nil {
				nc.Close()
				t.Fatal("a client without the token connected")
			}
			if nc, err := nats.Connect(url, nats.Token("wrong-"+token), nats.Timeout(5*time.Second)); err == nil {
				nc.Close()
				t.Fatal("a client with a wrong token connected")
			}
			connect(t, url, nats.Token(token)).Close()
		})
	}
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	return nc
}
