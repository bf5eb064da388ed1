package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

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
