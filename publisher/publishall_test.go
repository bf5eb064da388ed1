package publisher

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/ionix/ionixsnow/embedded"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// Items of the format tests: valid ones, and ones PublishAll must report.
const (
	validNetwork = `{"id":"a-1","title":{"label":"Open port 22 on vpn.example.com"},"type":"Network","urgency":{"urgency":7.5},"tags":["prod"]}`
	validPKI     = `{"id":"b-2","title":"Certificate expires in 5 days","type":"PKI","urgency":9.1,"asset":"www.example.com"}`
	validEmail   = `{"id":"c 3/ü","title":{"label":"No DMARC record"},"type":"Email Security","urgency":3}`
	noType       = `{"id":"bad-1","title":"Missing type","urgency":5}`
	badUrgency   = `{"id":"bad-2","title":"Urgency out of range","type":"DNS","urgency":42}`
	notAnObject  = `"just text"`
)

// format renders items (compact JSON values) as one input format and says where
// each item starts.
type format struct {
	name   string
	render func(items []string) (string, []Position)
}

var formats = []format{
	{"ndjson", func(items []string) (string, []Position) {
		var b strings.Builder
		pos := make([]Position, len(items))
		for i, it := range items {
			b.WriteString(it + "\n")
			pos[i] = Position{Line: i + 1, Index: -1}
		}
		return b.String(), pos
	}},
	{"json array", func(items []string) (string, []Position) {
		pos := make([]Position, len(items))
		for i := range items {
			pos[i] = Position{Line: i + 2, Index: i}
		}
		return "[\n" + strings.Join(items, ",\n") + "\n]\n", pos
	}},
	{"ionix api page", func(items []string) (string, []Position) {
		pos := make([]Position, len(items))
		for i := range items {
			pos[i] = Position{Line: i + 2, Index: i}
		}
		return fmt.Sprintf("{\"count\": %d, \"next\": null, \"previous\": null, \"results\": [\n%s\n]}\n",
			len(items), strings.Join(items, ",\n")), pos
	}},
	{"pretty documents", func(items []string) (string, []Position) {
		var b strings.Builder
		pos := make([]Position, len(items))
		line := 1
		for i, it := range items {
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, []byte(it), "", "  "); err != nil {
				panic(err)
			}
			pos[i] = Position{Line: line, Index: -1}
			b.Write(pretty.Bytes())
			b.WriteString("\n")
			line += bytes.Count(pretty.Bytes(), []byte{'\n'}) + 1
		}
		return b.String(), pos
	}},
}

// testStream starts a JetStream server with the action-item stream.
func testStream(t testing.TB) (*embedded.Server, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	s, err := topology.EnsureStream(context.Background(), js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return srv, js, s
}

func streamMessages(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestPublishAllFormats(t *testing.T) {
	cases := []struct {
		name    string
		items   []string
		invalid map[int]string // index in items -> part of the reason
	}{
		{"valid", []string{validNetwork, validPKI, validEmail}, nil},
		{"invalid among valid", []string{validNetwork, noType, validPKI, badUrgency, validEmail, notAnObject},
			map[int]string{1: "type", 3: "urgency", 5: "not a JSON object"}},
		{"only invalid", []string{noType, badUrgency}, map[int]string{0: "type", 1: "urgency"}},
	}
	for _, f := range formats {
		for _, c := range cases {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				_, js, stream := testStream(t)
				input, pos := f.render(c.items)
				pub := New(js, "")
				ctx := context.Background()

				res, err := pub.PublishAll(ctx, strings.NewReader(input), ionix.EventOpened, nil)
				if err != nil {
					t.Fatalf("PublishAll: %v", err)
				}
				valid := len(c.items) - len(c.invalid)
				if res.Published != valid || res.Duplicates != 0 || res.Invalid != len(c.invalid) || res.Unconfirmed != 0 {
					t.Errorf("result = %+v, want %d published, %d invalid", res, valid, len(c.invalid))
				}
				checkProblems(t, res.Problems, c.items, c.invalid, pos)
				if n := streamMessages(t, stream); n != uint64(valid) {
					t.Errorf("stream holds %d messages, want %d", n, valid)
				}
				checkStored(t, stream, c.items, c.invalid)

				// The same input again adds nothing: every valid item is a duplicate.
				again, err := pub.PublishAll(ctx, strings.NewReader(input), ionix.EventOpened, nil)
				if err != nil {
					t.Fatalf("second PublishAll: %v", err)
				}
				if again.Published != 0 || again.Duplicates != valid || again.Invalid != len(c.invalid) {
					t.Errorf("second result = %+v, want 0 published, %d duplicate, %d invalid", again, valid, len(c.invalid))
				}
				if n := streamMessages(t, stream); n != uint64(valid) {
					t.Errorf("after the second run the stream holds %d messages, want still %d", n, valid)
				}
			})
		}
	}
}

func checkProblems(t *testing.T, problems []Problem, items []string, invalid map[int]string, pos []Position) {
	t.Helper()
	var want []int
	for i := range items {
		if _, ok := invalid[i]; ok {
			want = append(want, i)
		}
	}
	if len(problems) != len(want) {
		t.Fatalf("%d problems, want %d: %v", len(problems), len(want), problems)
	}
	for k, i := range want {
		p := problems[k]
		if p.Pos != pos[i] {
			t.Errorf("problem %d at %s, want %s", k, p.Pos, pos[i])
		}
		if !strings.Contains(p.Err.Error(), invalid[i]) {
			t.Errorf("problem %d: %v, want a reason about %q", k, p.Err, invalid[i])
		}
		if id := idOf(items[i]); strings.HasPrefix(items[i], "{") && p.ID != id {
			t.Errorf("problem %d names id %q, want %q", k, p.ID, id)
		}
	}
}

// checkStored checks that the stream holds the valid items in input order, each
// with its subject, de-duplication id and event header.
func checkStored(t *testing.T, s jetstream.Stream, items []string, invalid map[int]string) {
	t.Helper()
	seq := uint64(0)
	for i, raw := range items {
		if _, bad := invalid[i]; bad {
			continue
		}
		seq++
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		item, err := ionix.Decode([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if want := ionix.Subject("", ionix.EventOpened, item.Type); m.Subject != want {
			t.Errorf("message %d on %q, want %q", seq, m.Subject, want)
		}
		if got, want := m.Header.Get(jetstream.MsgIDHeader), ionix.MsgID(item, ionix.EventOpened); got != want {
			t.Errorf("message %d Nats-Msg-Id %q, want %q", seq, got, want)
		}
		if got := m.Header.Get(topology.HeaderEvent); got != string(ionix.EventOpened) {
			t.Errorf("message %d Ionix-Event %q", seq, got)
		}
		if string(m.Data) != raw {
			t.Errorf("message %d body %s, want %s", seq, m.Data, raw)
		}
	}
}

// ndjsonItems returns n valid items as NDJSON, their ids starting with prefix.
func ndjsonItems(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"%s-%d","title":{"label":"Open port %d on host-%d.example.com"},"type":"Network","urgency":{"urgency":%.1f}}`+"\n",
			prefix, i, 1000+i%60000, i, float64(i%101)/10)
	}
	return b.String()
}

func TestPublishAllRepeatedAndChangedItemsInOneInput(t *testing.T) {
	_, js, stream := testStream(t)
	v1 := `{"id":"x","title":"T","type":"DNS","urgency":5}`
	v2 := `{"id":"x","title":"T","type":"DNS","urgency":6}`
	input := strings.Join([]string{v1, v2, v1, validPKI, v2}, "\n") + "\n"
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened, nil)
	if err != nil {
		t.Fatal(err)
	}
	// v1 and v2 are two versions; the later v1 and v2 are the same messages again.
	if res.Published != 3 || res.Duplicates != 2 {
		t.Errorf("result = %+v, want 3 published, 2 duplicate", res)
	}
	if n := streamMessages(t, stream); n != 3 {
		t.Errorf("stream holds %d messages, want 3", n)
	}
	m1, _ := stream.GetMsg(context.Background(), 1)
	m2, _ := stream.GetMsg(context.Background(), 2)
	if m1 == nil || m2 == nil || string(m1.Data) != v1 || string(m2.Data) != v2 {
		t.Errorf("the versions of one item are not stored in input order")
	}
}

func TestPublishAllDryRunNeedsNoServer(t *testing.T) {
	v1 := `{"id":"x","title":"T","type":"DNS","urgency":5}`
	v2 := `{"id":"x","title":"T","type":"DNS","urgency":6}`
	input := strings.Join([]string{v1, validPKI, noType, v1, v2, "oops", validPKI}, "\n") + "\n"
	var last Progress
	res, err := New(nil, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened,
		&PublishAllOptions{DryRun: true, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 3 || res.Repeated != 2 || res.Invalid != 2 || res.Duplicates != 0 || !res.DryRun {
		t.Errorf("result = %+v, want 3 to publish, 2 repeated, 2 invalid", res)
	}
	wantRepeats := []string{
		`line 4 (id "x"): same item and version as line 1`,
		`line 7 (id "b-2"): same item and version as line 2`,
	}
	if len(res.Repeats) != len(wantRepeats) {
		t.Fatalf("repeats = %v", res.Repeats)
	}
	for i, w := range wantRepeats {
		if got := res.Repeats[i].String(); got != w {
			t.Errorf("repeat %d = %q, want %q", i, got, w)
		}
	}
	if !last.Done || !last.DryRun || last.Read != 7 || last.Handled() != 7 {
		t.Errorf("last progress = %+v", last)
	}
}

func TestPublishAllWithoutJetStreamOnlyDryRuns(t *testing.T) {
	_, err := New(nil, "").PublishAll(context.Background(), strings.NewReader(validPKI), ionix.EventOpened, nil)
	if !errors.Is(err, ErrNoJetStream) {
		t.Errorf("err = %v, want ErrNoJetStream", err)
	}
}

// gatedJS holds back the acknowledgements of asynchronous publishes: the oldest
// is released only once max are outstanding, or when every item was sent. It
// records how many were outstanding at each publish.
type gatedJS struct {
	jetstream.JetStream
	max, total int

	mu             sync.Mutex
	gates          []chan struct{}
	calls          int
	maxOutstanding int
}

func (g *gatedJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	fut, err := g.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	gate := make(chan struct{})
	g.mu.Lock()
	g.calls++
	g.gates = append(g.gates, gate)
	g.maxOutstanding = max(g.maxOutstanding, len(g.gates))
	release := len(g.gates) >= g.max
	if g.calls == g.total {
		release = true
	}
	if release {
		// Release from another goroutine, so that a publisher that does not
		// wait for its window could send more before the release.
		go g.release(g.calls == g.total)
	}
	g.mu.Unlock()
	return newGatedFuture(fut, gate), nil
}

func (g *gatedJS) release(all bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.gates) > 0 {
		close(g.gates[0])
		g.gates = g.gates[1:]
		if !all {
			return
		}
	}
}

type gatedFuture struct {
	jetstream.PubAckFuture
	ok  chan *jetstream.PubAck
	err chan error
}

func newGatedFuture(real jetstream.PubAckFuture, gate chan struct{}) *gatedFuture {
	f := &gatedFuture{PubAckFuture: real, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		<-gate
		select {
		case a := <-real.Ok():
			f.ok <- a
		case e := <-real.Err():
			f.err <- e
		}
	}()
	return f
}

func (f *gatedFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *gatedFuture) Err() <-chan error            { return f.err }

func TestPublishAllBoundsAcknowledgementsInFlight(t *testing.T) {
	_, js, stream := testStream(t)
	const items = 200
	for _, window := range []int{1, 7, 64} {
		t.Run(fmt.Sprintf("max in flight %d", window), func(t *testing.T) {
			g := &gatedJS{JetStream: js, max: window, total: items}
			var sawInFlight int
			res, err := New(g, "").PublishAll(context.Background(), strings.NewReader(ndjsonItems(fmt.Sprintf("w%d", window), items)), ionix.EventOpened,
				&PublishAllOptions{MaxInFlight: window, ProgressInterval: time.Millisecond, Progress: func(p Progress) {
					sawInFlight = max(sawInFlight, p.InFlight)
				}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Published != items {
				t.Errorf("published %d, want %d", res.Published, items)
			}
			if g.maxOutstanding != window {
				t.Errorf("at most %d acknowledgements outstanding, want exactly the window %d", g.maxOutstanding, window)
			}
			if sawInFlight > window {
				t.Errorf("progress reported %d in flight, more than the window %d", sawInFlight, window)
			}
		})
	}
	if n := streamMessages(t, stream); n != 3*items {
		t.Errorf("stream holds %d messages, want %d", n, 3*items)
	}
}

// overlapJS records whether a version of an item was sent while an earlier
// version of it was still awaiting its acknowledgement. A publish stops counting
// as outstanding just before its outcome is handed over, so PublishAll cannot
// have seen it yet: there are no false alarms.
type overlapJS struct {
	jetstream.JetStream

	mu          sync.Mutex
	outstanding map[string]int // item id -> publishes awaiting acknowledgement
	overlaps    []string
}

func (o *overlapJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	item, err := ionix.Decode(m.Data)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	if o.outstanding[item.ID] > 0 {
		o.overlaps = append(o.overlaps, item.Title)
	}
	o.outstanding[item.ID]++
	o.mu.Unlock()
	fut, err := o.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	f := &gatedFuture{PubAckFuture: fut, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		var ack *jetstream.PubAck
		var ackErr error
		select {
		case ack = <-fut.Ok():
		case ackErr = <-fut.Err():
		}
		o.mu.Lock()
		o.outstanding[item.ID]--
		o.mu.Unlock()
		if ackErr != nil {
			f.err <- ackErr
		} else {
			f.ok <- ack
		}
	}()
	return f, nil
}

func TestPublishAllSendsVersionsOfOneItemInOrder(t *testing.T) {
	_, js, stream := testStream(t)
	var b strings.Builder
	const versions = 30
	for v := range versions {
		fmt.Fprintf(&b, `{"id":"same","title":"version %d","type":"DNS","urgency":5}`+"\n", v)
		fmt.Fprintf(&b, `{"id":"other-%d","title":"other","type":"DNS","urgency":5}`+"\n", v)
	}
	o := &overlapJS{JetStream: js, outstanding: make(map[string]int)}
	res, err := New(o, "").PublishAll(context.Background(), strings.NewReader(b.String()), ionix.EventOpened, nil)
	if err != nil || res.Published != 2*versions {
		t.Fatalf("result %+v, err %v", res, err)
	}
	if len(o.overlaps) > 0 {
		t.Errorf("sent while an earlier version was unacknowledged: %v", o.overlaps)
	}
	v := 0
	for seq := uint64(1); seq <= 2*versions; seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m.Data), `"id":"same"`) {
			if want := fmt.Sprintf(`"title":"version %d"`, v); !strings.Contains(string(m.Data), want) {
				t.Errorf("message %d is %s, want version %d", seq, m.Data, v)
			}
			v++
		}
	}
}

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
	var logs bytes.Buffer
	start := time.Now()
	res, err := New(js, "").PublishAll(context.Background(), in, ionix.EventOpened, &PublishAllOptions{
		AckTimeout: 300 * time.Millisecond, Retries: 1, ProgressInterval: time.Millisecond,
		Progress: progress, Log: zerolog.New(&syncWriter{w: &logs}),
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
	var logs bytes.Buffer
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened,
		&PublishAllOptions{MaxInFlight: 1, Log: zerolog.New(&syncWriter{w: &logs})})
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want the stream's refusal of line 2", err)
	}
	if res.Published != 1 || res.Unconfirmed != 1 {
		t.Errorf("result = %+v, want 1 published before the refusal, 1 unconfirmed", res)
	}
	if logs.Len() > 0 {
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
	var logs bytes.Buffer
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(validPKI+"\n"), ionix.EventOpened,
		&PublishAllOptions{Retries: 1, Log: zerolog.New(&syncWriter{w: &logs})})
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

func TestPublishAllReportsProgress(t *testing.T) {
	_, js, _ := testStream(t)
	input := ndjsonItems("p", 500) + noType + "\n"
	var reports []Progress
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened, &PublishAllOptions{
		Size: int64(len(input)), Progress: func(p Progress) { reports = append(reports, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	last := reports[len(reports)-1]
	want := Progress{Read: 501, Published: 500, Invalid: 1, BytesRead: int64(len(input)), Size: int64(len(input)), Line: 501, Lines: 501, Done: true}
	last.Elapsed = 0
	if last != want {
		t.Errorf("last report = %+v\nwant          %+v", last, want)
	}
	if res.Published != last.Published || res.Invalid != last.Invalid {
		t.Errorf("result %+v disagrees with the last report", res)
	}
	for _, p := range reports[:len(reports)-1] {
		if p.Done {
			t.Errorf("a report before the last one is marked done: %+v", p)
		}
	}
}

func TestProgressFractionAndETA(t *testing.T) {
	almostDone := maxUnfinished
	tests := []struct {
		name     string
		p        Progress
		fraction float64
		ok       bool
		eta      time.Duration
	}{
		{"size unknown", Progress{BytesRead: 500, Elapsed: time.Second}, 0, false, 0},
		{"by bytes while reading", Progress{BytesRead: 250, Size: 1000, Elapsed: time.Second}, 0.25, true, 3 * time.Second},
		{"by line once read whole", Progress{BytesRead: 1000, Size: 1000, Line: 10, Lines: 40, Elapsed: 2 * time.Second}, 0.25, true, 6 * time.Second},
		{"done", Progress{BytesRead: 1000, Size: 1000, Line: 39, Lines: 40, Done: true, Elapsed: time.Second}, 1, true, 0},
		{"nothing read yet", Progress{Size: 1000, Elapsed: time.Second}, 0, true, 0},
		{"read to the end, not done", Progress{BytesRead: 1000, Size: 1000, Elapsed: time.Second}, almostDone, true, time.Duration(float64(time.Second) * (1 - almostDone) / almostDone)},
		{"more read than the size said", Progress{BytesRead: 2000, Size: 1000, Elapsed: time.Second}, almostDone, true, time.Duration(float64(time.Second) * (1 - almostDone) / almostDone)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := tt.p.Fraction()
			if f != tt.fraction || ok != tt.ok {
				t.Errorf("Fraction() = %v, %v; want %v, %v", f, ok, tt.fraction, tt.ok)
			}
			eta, _ := tt.p.ETA()
			if eta != tt.eta {
				t.Errorf("ETA() = %s, want %s", eta, tt.eta)
			}
		})
	}
}

func TestCountingReaderCountsLines(t *testing.T) {
	tests := []struct {
		input string
		lines int64
	}{
		{"", 0},
		{"a\n", 1},
		{"a\nb", 2},
		{"a\n\nb\n", 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.input), func(t *testing.T) {
			c := newCountingReader(strings.NewReader(tt.input))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatal(err)
			}
			if !c.eof.Load() || c.lines.Load() != tt.lines || c.n.Load() != int64(len(tt.input)) {
				t.Errorf("eof %v, lines %d, bytes %d; want %d lines", c.eof.Load(), c.lines.Load(), c.n.Load(), tt.lines)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// syncWriter serialises writes from the collector and the test.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// BenchmarkPublishAll publishes 10,000 NDJSON items into a file-backed stream per
// iteration, one at a time and with the default window.
func BenchmarkPublishAll(b *testing.B) {
	const items = 10_000
	for _, bc := range []struct {
		name        string
		maxInFlight int
	}{
		{"sync", 1},
		{"async", DefaultMaxInFlight},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, js, _ := testStream(b)
			pub := New(js, "")
			inputs := make([]string, b.N)
			for i := range inputs {
				inputs[i] = ndjsonItems(fmt.Sprintf("bench-%d", i), items)
			}
			b.ResetTimer()
			for i := range b.N {
				res, err := pub.PublishAll(context.Background(), strings.NewReader(inputs[i]), ionix.EventOpened,
					&PublishAllOptions{MaxInFlight: bc.maxInFlight})
				if err != nil || res.Published != items {
					b.Fatalf("result %+v, err %v", res, err)
				}
			}
			b.ReportMetric(float64(items*b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
