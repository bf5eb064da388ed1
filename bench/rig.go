package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// rig is what a run stands on: an embedded JetStream server over a temporary store
// directory, a connection to it and, when asked for, the ServiceNow emulator on a
// loopback listener.
type rig struct {
	dir  string
	srv  *embedded.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	sim  *emulator.Server
	http *http.Server
	url  string // the emulator's base URL
}

// startRig starts the server (and the emulator, answering after latency, when
// withEmulator). close undoes whatever was started, also after a failure.
func startRig(withEmulator bool, latency time.Duration) (r *rig, err error) {
	r = &rig{}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.dir, err = os.MkdirTemp("", "ionixsnow-bench-*"); err != nil {
		return r, fmt.Errorf("store dir: %w", err)
	}
	if r.srv, err = embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: r.dir}); err != nil {
		return r, err
	}
	if r.nc, err = nats.Connect(r.srv.URL(), nats.Name("ionixsnow-bench")); err != nil {
		return r, fmt.Errorf("connect to the embedded server: %w", err)
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		return r, fmt.Errorf("jetstream: %w", err)
	}
	if !withEmulator {
		return r, nil
	}
	r.sim = emulator.New(emulator.Options{Latency: latency})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, fmt.Errorf("emulator listener: %w", err)
	}
	r.http = &http.Server{Handler: r.sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.http.Serve(ln) }()
	r.url = "http://" + ln.Addr().String()
	return r, nil
}

func (r *rig) close() {
	if r.http != nil {
		_ = r.http.Close()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.srv != nil {
		r.srv.Stop()
	}
	if r.dir != "" {
		_ = os.RemoveAll(r.dir)
	}
}

// waitConsumer polls the durable consumer's info every millisecond until ok says
// so, or ctx ends.
func waitConsumer(ctx context.Context, c jetstream.Consumer, ok func(*jetstream.ConsumerInfo) bool) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		info, err := c.Info(ctx)
		if err == nil && ok(info) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("consumer info: %w", err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
