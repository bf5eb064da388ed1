// Package dlq is the dead-letter stream (IONIX_DLQ): messages that cannot become
// incidents are stored there with the original body and headers plus the reason,
// subject and stream sequence; `ionixsnow dlq` lists, re-drives and purges them.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/topology"
)

// maxReasonLen bounds the reason kept in a header and in TermWithReason.
const maxReasonLen = 512

// HeaderBodyCut marks a dead letter whose body was cut to fit the server's
// maximum payload (the original body plus the dead-letter headers did not): it holds
// the original body's length in bytes. Re-driving it re-publishes the original from
// the main stream (Ionix-Dlq-Stream-Seq) while that still holds it.
const HeaderBodyCut = "Ionix-Dlq-Body-Cut"

// payloadMargin is kept free of a cut dead letter's body for the protocol's own
// header framing.
const payloadMargin = 1024

// Queue stores messages that cannot become incidents in the dead-letter stream,
// with the original body and headers plus the reason, subject and stream sequence.
type Queue struct {
	js    jetstream.JetStream
	names topology.Names
	now   func() time.Time
}

// New returns a dead-letter writer for the given topology names.
func New(js jetstream.JetStream, names topology.Names) *Queue {
	return &Queue{js: js, names: names.WithDefaults(), now: time.Now}
}

// Store publishes a dead letter for msg, which was delivered from the main stream at
// stream sequence seq. The dead letter's message id is derived from the stream, the
// sequence and the time the message was stored (which tells it from a message at the
// same sequence of an earlier instance of the stream), so storing the same message
// twice (a crash before Term, or the max-deliveries advisory too) keeps one copy.
func (d *Queue) Put(ctx context.Context, msg jetstream.Msg, seq uint64, reason string) error {
	var storedAt time.Time
	if meta, err := msg.Metadata(); err == nil {
		storedAt = meta.Timestamp
	}
	_, err := d.PutRaw(ctx, msg.Subject(), msg.Headers(), msg.Data(), seq, storedAt, reason)
	return err
}

// store publishes the dead letter of the message at stream sequence seq and reports
// whether the dead-letter stream already held it.
// storedAt, when the message was stored in the main stream, tells this message from
// one at the same sequence of an earlier instance of the stream (deleted and created
// again).
func (d *Queue) PutRaw(ctx context.Context, subject string, header nats.Header, data []byte, seq uint64, storedAt time.Time, reason string) (duplicate bool, err error) {
	reason = ShortReason(reason)
	dl := nats.NewMsg(d.names.DLQSubject(dlqToken(subject, d.names.ItemSubjectPrefix())))
	for k, vs := range header {
		if k == topology.HeaderMsgID {
			continue
		}
		for _, v := range vs {
			dl.Header.Add(k, v)
		}
	}
	dl.Header.Set(topology.HeaderDLQReason, reason)
	dl.Header.Set(topology.HeaderDLQSubject, subject)
	dl.Header.Set(topology.HeaderDLQStreamSeq, strconv.FormatUint(seq, 10))
	dl.Header.Set(topology.HeaderDLQFailedAt, d.now().UTC().Format(time.RFC3339))
	id := fmt.Sprintf("dlq:%s:%d", d.names.Stream, seq)
	if !storedAt.IsZero() {
		dl.Header.Set(topology.HeaderDLQStoredAt, storedAt.UTC().Format(time.RFC3339Nano))
		id += ":" + strconv.FormatInt(storedAt.UnixNano(), 10)
	}
	dl.Data = fitPayload(dl, data, d.js.Conn().MaxPayload())
	ack, err := d.js.PublishMsg(ctx, dl, jetstream.WithMsgID(id))
	if err != nil {
		return false, fmt.Errorf("store dead letter of sequence %d: %w", seq, err)
	}
	return ack.Duplicate, nil
}

// fitPayload returns data, or when data and dl's headers exceed maxPayload, data cut
// to fit and dl marked with HeaderBodyCut: an item near the limit that turns out
// invalid is dead-lettered all the same.
func fitPayload(dl *nats.Msg, data []byte, maxPayload int64) []byte {
	headerLen := 0
	for k, vs := range dl.Header {
		for _, v := range vs {
			headerLen += len(k) + len(v) + 4
		}
	}
	room := maxPayload - int64(headerLen) - payloadMargin
	if maxPayload <= 0 || int64(len(data)) <= room {
		return data
	}
	dl.Header.Set(HeaderBodyCut, strconv.Itoa(len(data)))
	return data[:max(room, 0)]
}

// dlqToken keeps the event and category of the original subject, so dead letters can
// be listed by category: ionix.action_items.opened.pki -> opened.pki.
func dlqToken(subject, prefix string) string {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok || rest == "" {
		return "unknown"
	}
	return rest
}

func ShortReason(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxReasonLen {
		return s
	}
	cut := maxReasonLen
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Letter is one stored dead letter, as `dlq list` shows it.
type Letter struct {
	StreamSeq uint64    `json:"stream_seq"` // sequence on the main stream
	Subject   string    `json:"subject"`    // subject on the main stream
	ID        string    `json:"id"`         // action item id, when the body had one
	Reason    string    `json:"reason"`
	FailedAt  time.Time `json:"failed_at"`
	DLQSeq    uint64    `json:"dlq_seq"` // sequence in the dead-letter stream
}

// List returns up to limit dead letters of the queue's tenant, oldest first (limit
// <= 0: all).
func (d *Queue) List(ctx context.Context, limit int) ([]Letter, error) {
	s, err := d.js.Stream(ctx, d.names.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	var out []Letter
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		if limit > 0 && len(out) >= limit {
			break
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		if !d.ours(m.Subject) {
			continue // another tenant's (SPEC §9)
		}
		out = append(out, letterOf(m))
	}
	return out, nil
}

func letterOf(m *jetstream.RawStreamMsg) Letter {
	dl := Letter{
		Subject: m.Header.Get(topology.HeaderDLQSubject),
		Reason:  m.Header.Get(topology.HeaderDLQReason),
		DLQSeq:  m.Sequence,
	}
	dl.StreamSeq, _ = strconv.ParseUint(m.Header.Get(topology.HeaderDLQStreamSeq), 10, 64)
	dl.FailedAt, _ = time.Parse(time.RFC3339, m.Header.Get(topology.HeaderDLQFailedAt))
	if item, _ := ionix.Decode(m.Data); item.ID != "" {
		dl.ID = item.ID
	}
	return dl
}
