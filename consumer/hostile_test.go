package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// hostileText is random text of n bytes drawn from one of several alphabets: plain
// token characters, punctuation that needs encoding, multi-byte runes, or any byte
// (invalid UTF-8, NUL, control characters).
func hostileText(rng *rand.Rand, n int) string { return hostileTextOf(rng, n, 4) }

// hostileTextOf is hostileText from the first kinds alphabets (3: valid UTF-8 only).
func hostileTextOf(rng *rand.Rand, n, kinds int) string {
	alphabets := []string{
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
		" .*>/=%:;\"'\\{}[]<>!@#$^&()+,?`~|\t\n\r",
		"äöüßéèñ漢字証明書🔥Ωж",
	}
	var b strings.Builder
	for b.Len() < n {
		switch k := rng.IntN(kinds); k {
		case 3:
			b.WriteByte(byte(rng.IntN(256)))
		default:
			runes := []rune(alphabets[k])
			b.WriteRune(runes[rng.IntN(len(runes))])
		}
	}
	return b.String()
}

// jsonString writes s as a JSON string without replacing invalid UTF-8 (as a
// hostile publisher would): only '"', '\\' and control characters are escaped.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestHostileItemsNeverStopTheConsumer is a property test: items whose id, title,
// category and description are random byte strings of many sizes (ids up to 20 KB,
// far beyond the NATS control-line limit of 4 KB, descriptions up to 200 KB) each
// end as an incident or a dead letter, and the consumer stays connected and ready
// throughout.
func TestHostileItemsNeverStopTheConsumer(t *testing.T) {
	t.Parallel()
	idSizes := []int{1, 40, 99, 100, 101, 400, 511, 512, 513, 700, 3000, 4100, 20000}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed "+strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, seed*7919))
			r := newRig(t, mapping.Filter{}, emulator.Options{})
			type sent struct {
				body []byte
				seq  uint64
			}
			var all []sent
			for i, size := range idSizes {
				id := strconv.Itoa(i) + "." + hostileTextOf(rng, size, []int{1, 2, 3, 3, 4}[i%5])
				title := hostileText(rng, 1+rng.IntN(300))
				typ := hostileText(rng, 1+rng.IntN([]int{10, 200, 5000}[i%3]))
				desc := hostileText(rng, rng.IntN([]int{10, 5000, 200000}[i%3]))
				body := fmt.Sprintf(`{"id":%s,"title":{"label":%s},"type":%s,"urgency":%g,"description":%s}`,
					jsonString(id), jsonString(title), jsonString(typ), float64(10+rng.IntN(91))/10, jsonString(desc))
				msg := nats.NewMsg(ionix.Subject("", ionix.EventOpened, typ))
				msg.Header.Set(topology.HeaderEvent, string(ionix.EventOpened))
				msg.Data = []byte(body)
				it := ionix.ActionItem{ID: id, Title: title, Type: typ}
				ack, err := r.js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(ionix.MsgID(it, ionix.EventOpened)))
				if err != nil {
					t.Fatalf("publish item %d (id of %d bytes): %v", i, len(id), err)
				}
				all = append(all, sent{body: msg.Data, seq: ack.Sequence})
			}
			c := r.start(t, r.topo.Consumer, mapping.Filter{})
			r.waitDrained(t)
			if st := r.js.Conn().Status(); st != nats.CONNECTED {
				t.Fatalf("NATS connection %s after the hostile items", st)
			}
			if p := c.Paused(); p.Paused {
				t.Fatalf("sending paused: %v", p.Cause)
			}
			// The server closes a connection whose control line (a publish's or a
			// request's subject and reply) passes 4,096 bytes — though it notices
			// only when the line spans two reads, so checked here, not left to luck.
			keys, err := r.topo.Tickets.ListKeys(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for key := range keys.Keys() {
				if line := len("HPUB $JS.API.DIRECT.GET.KV_" + r.topo.Names.TicketsBucket + ".$KV." + r.topo.Names.TicketsBucket + "." + key + " _INBOX.0123456789012345678901.0123456789012345678901 1000000 1000000"); line > 4096-1024 {
					t.Errorf("a ledger request's control line would be %d bytes (key of %d)", line, len(key))
				}
			}
			dead := map[uint64]string{}
			for _, dl := range r.deadLetters(t) {
				dead[dl.StreamSeq] = dl.Reason
			}
			incidents := map[string]int{}
			for _, in := range r.sim.Incidents() {
				incidents[in.CorrelationID]++
			}
			for i, s := range all {
				item, err := ionix.Decode(s.body)
				reason, isDead := dead[s.seq]
				switch {
				case err != nil && !isDead:
					t.Errorf("item %d (seq %d) is invalid (%v) but was not dead-lettered", i, s.seq, err)
				case err == nil && !isDead && incidents[mapping.CorrelationID(item.ID)] != 1:
					t.Errorf("item %d (id of %d bytes, seq %d): %d incidents, no dead letter", i, len(item.ID), s.seq, incidents[mapping.CorrelationID(item.ID)])
				case err == nil && isDead:
					t.Logf("item %d dead-lettered: %.100s", i, reason)
				}
			}
			if s := c.Stats(); s.Created+s.DeadLettered+s.Filtered() != int64(len(all)) {
				t.Errorf("stats %+v do not account for the %d items", s, len(all))
			}
			// The consumer is still at work: a plain item goes through.
			plain := item("after-hostile", "Exposed admin panel", "Web", 8, "2026-10-01T08:00:00Z")
			r.publish(t, plain)
			testkit.WaitFor(t, 10*time.Second, "a plain item after the hostile ones", func() bool {
				return c.Stats().Received == int64(len(all))+1 && r.sim.ImportCount() > 0
			})
		})
	}
}

// TestInvalidItemNearTheSizeLimitIsDeadLettered: an invalid item as large as the
// server takes leaves no room for the dead-letter headers; it is dead-lettered with
// its body cut (marked), the rest flows, and re-driving it re-publishes the whole
// original from the main stream.
func TestInvalidItemNearTheSizeLimitIsDeadLettered(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	maxPayload := int(r.js.Conn().MaxPayload())
	for _, size := range []int{maxPayload - 600, maxPayload - 100} {
		// No id: invalid, whatever else it holds.
		body := `{"title":"t","type":"DNS","urgency":9.5,"description":"` + strings.Repeat("x", size-80) + `"}`
		msg := nats.NewMsg(ionix.Subject("", ionix.EventOpened, "DNS"))
		msg.Data = []byte(body)
		if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatalf("publish %d bytes: %v", len(body), err)
		}
	}
	good := item("after-big", "Exposed admin panel", "Web", 8, "2026-10-01T08:00:00Z")
	r.publish(t, good)
	r.start(t, r.topo.Consumer, mapping.Filter{})
	r.waitDrained(t)
	if in := incidentOf(t, r.sim, good.ID); in.Inserts != 1 {
		t.Errorf("the item after the large ones: %d inserts", in.Inserts)
	}
	dls := r.deadLetters(t)
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want the 2 large invalid items", len(dls))
	}
	res, err := dlq.New(r.js, r.topo.Names).Redrive(context.Background(), dls[1].DLQSeq)
	if err != nil {
		t.Fatalf("re-drive: %v", err)
	}
	m, err := r.topo.Stream.GetMsg(context.Background(), res.NewSeq)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := r.topo.Stream.GetMsg(context.Background(), dls[1].StreamSeq)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Data) != len(orig.Data) {
		t.Errorf("re-driven body of %d bytes, want the original's %d", len(m.Data), len(orig.Data))
	}
}
