package consumer_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestRedriveAllGoesOnPastACutDeadLetterWhoseOriginalIsGone: the dead-letter
// stream has no age limit, the main stream keeps messages 30 days. Once the original
// of a cut dead letter is gone, that dead letter cannot be re-driven — but `dlq retry`
// (RedriveAll) must still re-drive the dead letters after it.
func TestRedriveAllGoesOnPastACutDeadLetterWhoseOriginalIsGone(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	maxPayload := int(r.js.Conn().MaxPayload())
	big := `{"title":"t","type":"DNS","urgency":9.5,"description":"` + strings.Repeat("x", maxPayload-200) + `"}`
	msg := nats.NewMsg(ionix.Subject("", ionix.EventOpened, "DNS"))
	msg.Data = []byte(big)
	ack, err := r.js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, r.topo.Consumer, mapping.Filter{})
	r.waitDrained(t)
	small := nats.NewMsg(ionix.Subject("", ionix.EventOpened, "DNS"))
	small.Data = []byte(`{"title":"no id","type":"DNS","urgency":9.5}`)
	if _, err := r.js.PublishMsg(context.Background(), small); err != nil {
		t.Fatal(err)
	}
	r.waitDrained(t)
	dls := r.deadLetters(t)
	if len(dls) != 2 || dls[0].StreamSeq != ack.Sequence {
		t.Fatalf("dead letters %+v, want 2, the cut one first", dls)
	}
	// The original ages out of the main stream (MaxAge).
	if err := r.topo.Stream.DeleteMsg(context.Background(), ack.Sequence); err != nil {
		t.Fatal(err)
	}
	n, err := dlq.New(r.js, r.topo.Names).RedriveAll(context.Background(), nil)
	if n != 1 {
		t.Errorf("RedriveAll re-drove %d dead letters (%v); want the one after the cut dead letter", n, err)
	}
	if !errors.Is(err, dlq.ErrOriginalGone) {
		t.Errorf("RedriveAll error %v, want it to name ErrOriginalGone", err)
	}
}

// TestRedriveOfAnItemAtTheSizeLimit: an invalid item that fills the payload (the
// publisher's own Nats-Msg-Id aside) is dead-lettered with a cut body; its re-drive
// adds Ionix-Redriven-From and a Nats-Msg-Id to the original and no longer fits: the
// error says so, and the dead letter stays.
func TestRedriveOfAnItemAtTheSizeLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	maxPayload := int(r.js.Conn().MaxPayload())
	head := `{"title":"t","type":"DNS","urgency":9.5,"description":"`
	body := head + strings.Repeat("x", maxPayload-len(head)-2-30) + `"}`
	msg := nats.NewMsg(ionix.Subject("", ionix.EventOpened, "DNS"))
	msg.Data = []byte(body)
	if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	r.start(t, r.topo.Consumer, mapping.Filter{})
	r.waitDrained(t)
	dls := r.deadLetters(t)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	// Re-driven, it would carry Ionix-Redriven-From and a message id more than the
	// original: it does not fit. That is said, and the dead letter stays.
	dl := dlq.New(r.js, r.topo.Names)
	if _, err := dl.Redrive(context.Background(), dls[0].DLQSeq); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("re-drive: %v, want nats.ErrMaxPayload", err)
	}
	if n, err := dl.RedriveAll(context.Background(), nil); n != 0 || !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("RedriveAll = %d, %v; want 0 and the size named", n, err)
	}
	if len(r.deadLetters(t)) != 1 {
		t.Error("the dead letter did not stay")
	}
}
