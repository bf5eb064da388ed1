package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// gatedReader serves first, then waits for open before serving rest.
type gatedReader struct {
	first, rest io.Reader
	open        chan struct{}
}

func (r *gatedReader) Read(p []byte) (int, error) {
	n, err := r.first.Read(p)
	if err != io.EOF {
		return n, err
	}
	<-r.open
	return r.rest.Read(p)
}

// progressUntil returns a Progress callback, and a channel closed once a report
// satisfies cond.
func progressUntil(cond func(Progress) bool) (func(Progress), <-chan struct{}) {
	reached := make(chan struct{})
	var once sync.Once
	return func(p Progress) {
		if cond(p) {
			once.Do(func() { close(reached) })
		}
	}, reached
}

func TestPublishAllServerGoneMidRun(t *testing.T) {
	srv, _, _ := testStream(t)
	// A connection of its own, quiet about the broken pipe it is about to see.
	nc, err := nats.Connect(srv.URL(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	in := &gatedReader{
		first: strings.NewReader(ndjsonItems("before", 100)),
		rest:  strings.NewReader(ndjsonItems("after", 100)),
		open:  make(chan struct{}),
	}
	progress, reached := progressUntil(func(p Progress) bool { return p.Published == 100 })
	go func() {
		<-reached
		srv.Shutdown()
		close(in.open)
	}()
	var logs testkit.Buffer
	start := time.Now()
	res, err := New(js, "").PublishAll(context.Background(), in, ionix.EventOpened, &PublishAllOptions{
		AckTimeout: 300 * time.Millisecond, Retries: 1, ProgressInterval: time.Millisecond,
		Progress: progress, Log: zerolog.New(&logs),
	})
	if err == nil {
		t.Fatalf("no error after the server went away; result %+v", res)
	}
	t.Logf("error after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if res.Published != 100 || res.Duplicates != 0 {
		t.Errorf("result = %+v, want the 100 acknowledged before the server went away", res)
	}
	if res.Unconfirmed < 1 {
		t.Errorf("result = %+v: the publish that failed is not counted as unconfirmed", res)
	}
	if !strings.Contains(err.Error(), "line 101 ") || !strings.Contains(err.Error(), `"after-0"`) {
		t.Errorf("error %q does not name the first item that failed", err)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("the failed publish was not retried; log:\n%s", logs.String())
	}
}

func TestPublishAllStopsWhenContextEnds(t *testing.T) {
	_, js, stream := testStream(t)
	in := &gatedReader{
		first: strings.NewReader(ndjsonItems("before", 50)),
		rest:  strings.NewReader(ndjsonItems("after", 50)),
		open:  make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress, reached := progressUntil(func(p Progress) bool { return p.Published == 50 })
	go func() {
		<-reached
		cancel()
		close(in.open)
	}()
	res, err := New(js, "").PublishAll(ctx, in, ionix.EventOpened, &PublishAllOptions{ProgressInterval: time.Millisecond, Progress: progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Published != 50 {
		t.Errorf("result = %+v, want the 50 published before the cancellation", res)
	}
	if n := streamMessages(t, stream); n != 50 {
		t.Errorf("stream holds %d messages, want 50", n)
	}
}

func TestPublishAllRefusedPublishIsNotRetried(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	cfg := topology.StreamConfig(topology.Options{})
	cfg.MaxMsgSize = 400
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	big := fmt.Sprintf(`{"id":"big","title":"Big","type":"DNS","urgency":5,"description":%q}`, strings.Repeat("x", 600))
	input := validPKI + "\n" + big + "\n" + validNetwork + "\n"
	var logs testkit.Buffer
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened,
		&PublishAllOptions{MaxInFlight: 1, Log: zerolog.New(&logs)})
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want the stream's refusal of line 2", err)
	}
	if res.Published != 1 || res.Unconfirmed != 1 {
		t.Errorf("result = %+v, want 1 published before the refusal, 1 unconfirmed", res)
	}
	if logs.String() != "" {
		t.Errorf("a refusal was retried:\n%s", logs.String())
	}
}

// TestPublishAllRetriesUntilTheStreamAnswers: with no stream on the subjects (as
// while a stream leader is elected) the publish gets no responders; it is sent
// again after a backoff and succeeds once the stream is there.
func TestPublishAllRetriesUntilTheStreamAnswers(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	created := false
	// The stream is created when the first retry is logged, before it is sent.
	logw := writerFunc(func(p []byte) (int, error) {
		if !created {
			created = true
			if _, err := topology.EnsureStream(context.Background(), js, topology.Options{}); err != nil {
				t.Error(err)
			}
		}
		return len(p), nil
	})
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(validPKI+"\n"), ionix.EventOpened,
		&PublishAllOptions{Log: zerolog.New(logw)})
	if err != nil {
		t.Fatal(err)
	}
	if !created || res.Published != 1 {
		t.Errorf("result = %+v, retried: %v; want 1 published after a retry", res, created)
	}
}

func TestPublishAllGivesUpWithoutAStream(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	var logs testkit.Buffer
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(validPKI+"\n"), ionix.EventOpened,
		&PublishAllOptions{Retries: 1, Log: zerolog.New(&logs)})
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("err = %v, want no stream response", err)
	}
	if res.Published != 0 || res.Unconfirmed != 1 || strings.Count(logs.String(), "retrying") != 1 {
		t.Errorf("result = %+v, log:\n%s", res, logs.String())
	}
}

// failingReader returns err once its data is read.
type failingReader struct {
	data io.Reader
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	n, err := r.data.Read(p)
	if err == io.EOF {
		return n, r.err
	}
	return n, err
}

func TestPublishAllUnreadableInput(t *testing.T) {
	_, js, stream := testStream(t)
	readErr := errors.New("connection reset by peer")
	in := &failingReader{data: strings.NewReader(validPKI + "\n" + validNetwork + "\n"), err: readErr}
	res, err := New(js, "").PublishAll(context.Background(), in, ionix.EventOpened, nil)
	if !errors.Is(err, ErrFormat) || !errors.Is(err, readErr) {
		t.Fatalf("err = %v, want ErrFormat with the read error", err)
	}
	if res.Published != 2 {
		t.Errorf("result = %+v, want the 2 items before the failure published", res)
	}
	if n := streamMessages(t, stream); n != 2 {
		t.Errorf("stream holds %d messages, want 2", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
