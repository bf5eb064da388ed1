package publisher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// startServerWithMaxPayload starts a JetStream server that takes messages of at
// most limit bytes (max_payload, body and headers) and returns its client URL.
func startServerWithMaxPayload(tb testing.TB, limit int32) string {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: tb.TempDir(),
		MaxPayload: limit, NoLog: true, NoSigs: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	ns.Start()
	tb.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server not ready")
	}
	return ns.ClientURL()
}

// messageSize is what the server counts against max_payload for the item's
// message: its body and its headers (the event and the de-duplication id).
func messageSize(tb testing.TB, body string, ev ionix.Event) int {
	tb.Helper()
	item, err := ionix.Decode([]byte(body))
	if err != nil {
		tb.Fatal(err)
	}
	msg := nats.NewMsg("subject")
	msg.Header.Set(topology.HeaderEvent, string(ev))
	msg.Header.Set(jetstream.MsgIDHeader, ionix.MsgID(item, ev))
	msg.Data = []byte(body)
	return msg.Size() - len(msg.Subject)
}

// itemOfSize returns a valid item whose message takes exactly size bytes.
func itemOfSize(tb testing.TB, id string, size int) string {
	tb.Helper()
	body := func(pad int) string {
		return `{"id":"` + id + `","title":"Large finding","type":"DNS","urgency":5,"description":"` + strings.Repeat("d", pad) + `"}`
	}
	pad := size - messageSize(tb, body(0), ionix.EventOpened)
	if pad < 0 {
		tb.Fatalf("an item's message cannot be as small as %d bytes", size)
	}
	return body(pad)
}

// TestPublishAllSkipsItemsTooLargeForOneMessage: an item whose message (body and
// headers) would exceed the connected server's max_payload is named with its
// place, its size and the limit, and skipped — first, in the middle or last, in
// every input format — while the others are published; an item exactly at the
// limit is published. A dry run, connected to nothing, names the same items.
func TestPublishAllSkipsItemsTooLargeForOneMessage(t *testing.T) {
	const limit = 48 << 10 // not the default: the server's own limit is used
	js := natstest.Connect(t, startServerWithMaxPayload(t, limit))
	stream, err := topology.EnsureStream(context.Background(), js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []struct {
		name string
		size int
		fits bool
	}{
		{"one byte under the limit", limit - 1, true},
		{"at the limit", limit, true},
		{"one byte over the limit", limit + 1, false},
		{"twice the limit", 2 * limit, false},
	}
	run := 0
	for _, f := range formats {
		for _, sz := range sizes {
			for at, where := range []string{"first", "middle", "last"} {
				run++ // ids of their own: the stream remembers ids after a purge
				t.Run(f.name+"/"+sz.name+"/"+where, func(t *testing.T) {
					if err := stream.Purge(context.Background()); err != nil {
						t.Fatal(err)
					}
					items := []string{
						fmt.Sprintf(`{"id":"small-%d-a","title":"Open port 22","type":"Network","urgency":7.5}`, run),
						fmt.Sprintf(`{"id":"small-%d-b","title":{"label":"Certificate expires"},"type":"PKI","urgency":{"urgency":9.1}}`, run),
					}
					big := itemOfSize(t, fmt.Sprintf("big-%d", run), sz.size)
					items = append(items[:at], append([]string{big}, items[at:]...)...)
					input, pos := f.render(items)
					invalid := map[int]string{}
					if !sz.fits {
						invalid[at] = fmt.Sprintf("its message (body and headers) would be %d bytes, over the limit of %d bytes", sz.size, limit)
					}

					res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened, nil)
					if err != nil {
						t.Fatalf("PublishAll: %v", err)
					}
					want := len(items) - len(invalid)
					if res.Published != want || res.Invalid != len(invalid) || res.Unconfirmed != 0 {
						t.Errorf("result = %+v, want %d published, %d invalid", res, want, len(invalid))
					}
					checkProblems(t, res.Problems, items, invalid, pos)
					for _, p := range res.Problems {
						if !errors.Is(p.Err, ErrTooLarge) {
							t.Errorf("problem %v is not ErrTooLarge", p.Err)
						}
					}
					if n := streamMessages(t, stream); n != uint64(want) {
						t.Errorf("stream holds %d messages, want %d", n, want)
					}

					dry, err := New(nil, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened,
						&PublishAllOptions{DryRun: true, MaxPayload: limit})
					if err != nil {
						t.Fatalf("dry run: %v", err)
					}
					if dry.Published != want || dry.Invalid != len(invalid) {
						t.Errorf("dry run result = %+v, want %d to publish, %d invalid", dry, want, len(invalid))
					}
					checkProblems(t, dry.Problems, items, invalid, pos)
				})
			}
		}
	}
}

// TestPublishAllMaxPayload: a dry run assumes the NATS default limit unless told
// another; a real run takes the server's, lowered by an option but never raised.
func TestPublishAllMaxPayload(t *testing.T) {
	const serverLimit = 40 << 10
	js := natstest.Connect(t, startServerWithMaxPayload(t, serverLimit))
	if _, err := topology.EnsureStream(context.Background(), js, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		js      jetstream.JetStream
		option  int64
		size    int
		invalid int
	}{
		{"dry run at the default limit", nil, 0, DefaultMaxPayload, 0},
		{"dry run over the default limit", nil, 0, DefaultMaxPayload + 1, 1},
		{"dry run at a limit given", nil, 20 << 10, 20 << 10, 0},
		{"dry run over a limit given", nil, 20 << 10, 20<<10 + 1, 1},
		{"run at the server's limit", js, 0, serverLimit, 0},
		{"run over the server's limit", js, 0, serverLimit + 1, 1},
		{"run over a lower limit given", js, 20 << 10, 20<<10 + 1, 1},
		{"run over the server's limit, a higher one given", js, 2 * serverLimit, serverLimit + 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := itemOfSize(t, "sized", tt.size) + "\n" + validPKI + "\n"
			res, err := New(tt.js, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened,
				&PublishAllOptions{DryRun: tt.js == nil, MaxPayload: tt.option})
			if err != nil {
				t.Fatalf("PublishAll: %v", err)
			}
			if res.Invalid != tt.invalid || res.Published+res.Duplicates != 2-tt.invalid {
				t.Errorf("result = %+v, want %d invalid, the rest published", res, tt.invalid)
			}
		})
	}
}
