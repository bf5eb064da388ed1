package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// Where a run's NATS server is (Result.NATS).
const (
	NATSInProcess = "in-process"
	NATSExternal  = "external"
)

// rig is what a run stands on: a JetStream server (an embedded one over a
// temporary store directory, or an external one), a connection to it, the names of
// the run's JetStream objects and, when asked for, the ServiceNow emulator on a
// loopback listener.
type rig struct {
	natsURL string // the external server; empty: the embedded one
	dir     string
	srv     *embedded.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	names   topology.Names
	sim     *emulator.Server
	http    *http.Server
	url     string // the emulator's base URL
}

// rigOptions say what a rig starts.
type rigOptions struct {
	natsURL  string        // an external nats-server; empty: start an embedded one
	emulator bool          // start the emulator
	latency  time.Duration // the emulator's response latency
}

// startRig starts the server (or connects to the external one) and, when asked
// for, the emulator. On an embedded server the run uses the default names (the
// server is the run's alone); on an external one, names of its own (runNames),
// so that it neither meets what the server already holds nor another run.
// close undoes whatever was started, also after a failure.
func startRig(o rigOptions) (r *rig, err error) {
	r = &rig{natsURL: o.natsURL, names: topology.DefaultNames()}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	url := o.natsURL
	if url == "" {
		if r.dir, err = os.MkdirTemp("", "ionixsnow-bench-*"); err != nil {
			return r, fmt.Errorf("store dir: %w", err)
		}
		if r.srv, err = embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: r.dir}); err != nil {
			return r, err
		}
		url = r.srv.URL()
	} else {
		r.names = runNames(fmt.Sprintf("%012x", rand.Uint64()>>16))
	}
	if r.nc, err = nats.Connect(url, nats.Name("ionixsnow-bench")); err != nil {
		return r, fmt.Errorf("connect to the %s nats-server: %w", r.where(), err)
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		return r, fmt.Errorf("jetstream: %w", err)
	}
	if !o.emulator {
		return r, nil
	}
	r.sim = emulator.New(emulator.Options{Latency: o.latency})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, fmt.Errorf("emulator listener: %w", err)
	}
	r.http = &http.Server{Handler: r.sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.http.Serve(ln) }()
	r.url = "http://" + ln.Addr().String()
	return r, nil
}

// runNames are the names of one run's objects on an external server: token makes
// them the run's own.
func runNames(token string) topology.Names {
	return topology.Names{
		Stream:           "IONIXSNOW_BENCH_" + token,
		SubjectPrefix:    "ionixsnow_bench." + token,
		Consumer:         "bench",
		DLQStream:        "IONIXSNOW_BENCH_DLQ_" + token,
		DLQSubjectPrefix: "ionixsnow_bench_dlq." + token,
		BudgetBucket:     "ionixsnow_bench_budget_" + token,
		TicketsBucket:    "ionixsnow_bench_tickets_" + token,
		SeenBucket:       "ionixsnow_bench_seen_" + token,
	}
}

// where is NATSInProcess or NATSExternal.
func (r *rig) where() string {
	if r.natsURL != "" {
		return NATSExternal
	}
	return NATSInProcess
}

func (r *rig) close() {
	if r.http != nil {
		_ = r.http.Close()
	}
	if r.natsURL != "" && r.js != nil {
		_ = r.removeObjects()
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

// removeObjects deletes the run's streams (their consumers with them) and buckets
// from the external server; one that was never created is not an error.
func (r *rig) removeObjects() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, s := range []string{r.names.Stream, r.names.DLQStream} {
		if err := r.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", s, err))
		}
	}
	for _, b := range []string{r.names.BudgetBucket, r.names.TicketsBucket, r.names.SeenBucket} {
		if err := r.js.DeleteKeyValue(ctx, b); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			errs = append(errs, fmt.Errorf("delete bucket %s: %w", b, err))
		}
	}
	return errors.Join(errs...)
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
