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

// Re-driving a dead letter puts its original message back on the main stream as a
// new message, which the consumer treats as a first delivery: it is posted again,
// and coalesce on correlation_id makes the post an update if the incident exists.
// The copy is published under a message id derived from the dead letter
// (redrive:<dead-letter stream>:<sequence>) before the dead letter is deleted, so a
// retry after a failure between the two steps is dropped by the stream's
// de-duplication window instead of being published twice.

// HeaderRedrivenFrom names the main-stream sequence a re-driven message had when it
// was dead-lettered (for a dead letter that was itself a copy, the sequence of the
// message it copied, which its own header already names).
const HeaderRedrivenFrom = "Ionix-Redriven-From"

// dlqHeaderPrefix starts every header the dead-letter stream adds (topology/headers.go).
const dlqHeaderPrefix = "ionix-dlq-"

// ErrNotFound is returned for a dead-letter sequence the dead-letter stream
// does not hold (never stored, already re-driven, or purged).
var ErrNotFound = errors.New("dead letter not found")

// ErrSubjectNotInStream is returned for a dead letter whose original subject is not
// one the main stream takes (the subject prefix was changed since), or that has none.
var ErrSubjectNotInStream = errors.New("original subject is not a subject of the action-item stream")

// RedriveResult says what became of one re-driven dead letter.
type RedriveResult struct {
	DLQSeq    uint64 // the dead letter's sequence in the dead-letter stream
	StreamSeq uint64 // the sequence the message had on the main stream when it failed
	Subject   string // its subject on the main stream
	ID        string // the action item id, when the body has one
	NewSeq    uint64 // the sequence of the re-driven copy on the main stream
	// Duplicate is true when the main stream already held this re-drive (an earlier
	// attempt published it but did not get to delete the dead letter).
	Duplicate bool
}

// Redrive publishes the dead letter at sequence dlqSeq of the dead-letter stream back
// to its original subject on the main stream, with its original body and headers
// (without the dead-letter headers and Nats-* control headers) plus
// Ionix-Redriven-From, and then deletes the dead letter.
func (d *Queue) Redrive(ctx context.Context, dlqSeq uint64) (RedriveResult, error) {
	to, err := d.redriveTargets(ctx)
	if err != nil {
		return RedriveResult{DLQSeq: dlqSeq}, err
	}
	raw, err := to.dlq.GetMsg(ctx, dlqSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && !d.ours(raw.Subject) {
		return RedriveResult{DLQSeq: dlqSeq}, fmt.Errorf("sequence %d of %s: %w", dlqSeq, d.names.DLQStream, ErrNotFound)
	}
	if err != nil {
		return RedriveResult{DLQSeq: dlqSeq}, fmt.Errorf("read dead letter %d: %w", dlqSeq, err)
	}
	return d.redrive(ctx, to, raw)
}

// RedriveAll re-drives every dead letter the dead-letter stream holds when it is
// called, oldest first, and reports how many it re-drove. Dead letters stored
// meanwhile (a re-driven item that fails again among them) are left for the next
// call. A dead letter that cannot be re-driven (ErrSubjectNotInStream, ErrOriginalGone,
// or a copy too large with the re-drive headers: nats.ErrMaxPayload) stays and the
// rest go on; any other failure stops the run. progress, when not nil, is called
// after each dead letter with the number handled so far and the number there were.
func (d *Queue) RedriveAll(ctx context.Context, progress func(done, total int)) (n int, err error) {
	to, err := d.redriveTargets(ctx)
	if err != nil {
		return 0, err
	}
	info, err := to.dlq.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream %s: %w", d.names.DLQStream, err)
	}
	count, err := d.Count(ctx)
	if err != nil {
		return 0, err
	}
	total, last := int(count), info.State.LastSeq
	var skipped []error
	done := 0
	for seq := info.State.FirstSeq; total > 0 && seq <= last; {
		// The next dead letter at or after seq, over the gaps re-drives leave.
		raw, err := to.dlq.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(d.names.DLQItemPrefix()+".>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && raw.Sequence > last {
			break
		}
		if err != nil {
			return n, errors.Join(append(skipped, fmt.Errorf("read dead letter %d: %w", seq, err))...)
		}
		seq = raw.Sequence + 1
		if !d.ours(raw.Subject) {
			continue // another tenant's
		}
		_, err = d.redrive(ctx, to, raw)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrSubjectNotInStream), errors.Is(err, ErrOriginalGone), errors.Is(err, nats.ErrMaxPayload):
			// This dead letter cannot go back; the others still can.
			skipped = append(skipped, err)
		default:
			return n, errors.Join(append(skipped, err)...)
		}
		done++
		if progress != nil {
			progress(done, max(total, done))
		}
	}
	return n, errors.Join(skipped...)
}

// Count returns how many dead letters of the queue's tenant the dead-letter stream
// holds (SPEC §9: a tenant's are under <dlq prefix>.<tenant>).
func (d *Queue) Count(ctx context.Context) (uint64, error) {
	counts, _, err := topology.DLQCounts(ctx, d.js, d.names)
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n, err
}

// ours reports whether a dead-letter subject is the queue's tenant's.
func (d *Queue) ours(subject string) bool { return topology.DLQSubjectOf(d.names, subject) }

// Purge deletes every dead letter of the queue's tenant the dead-letter stream holds
// when it is called and returns how many there were. Dead letters stored while it
// runs are kept, and so are other tenants'.
func (d *Queue) Purge(ctx context.Context) (uint64, error) {
	counts, lastSeq, err := topology.DLQCounts(ctx, d.js, d.names)
	if err != nil {
		return 0, err
	}
	s, err := d.js.Stream(ctx, d.names.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream %s: %w", d.names.DLQStream, err)
	}
	var n uint64
	for subject, c := range counts {
		// Up to and including the last sequence seen, not whatever arrives meanwhile.
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(lastSeq+1)); err != nil {
			return n, fmt.Errorf("purge dead-letter stream %s: %w", d.names.DLQStream, err)
		}
		n += c
	}
	return n, nil
}

// redriveTarget is where dead letters go back to.
type redriveTarget struct {
	dlq      jetstream.Stream
	subjects []string  // of the main stream
	created  time.Time // the main stream's creation time
}

// redriveTargets returns the dead-letter stream and the main stream's subjects and
// creation time.
func (d *Queue) redriveTargets(ctx context.Context) (redriveTarget, error) {
	dlq, err := d.js.Stream(ctx, d.names.DLQStream)
	if err != nil {
		return redriveTarget{}, fmt.Errorf("dead-letter stream %s: %w", d.names.DLQStream, err)
	}
	items, err := d.js.Stream(ctx, d.names.Stream)
	if err != nil {
		return redriveTarget{}, fmt.Errorf("action-item stream %s: %w", d.names.Stream, err)
	}
	info := items.CachedInfo()
	subjects := info.Config.Subjects
	if len(subjects) == 0 {
		subjects = []string{d.names.Stream} // a stream without subjects takes its name
	}
	return redriveTarget{dlq: dlq, subjects: subjects, created: info.Created}, nil
}

// redrive publishes the dead letter raw back to the main stream and deletes it.
func (d *Queue) redrive(ctx context.Context, to redriveTarget, raw *jetstream.RawStreamMsg) (RedriveResult, error) {
	dlq, subjects := to.dlq, to.subjects
	res := RedriveResult{DLQSeq: raw.Sequence, Subject: raw.Header.Get(topology.HeaderDLQSubject)}
	res.StreamSeq, _ = strconv.ParseUint(raw.Header.Get(topology.HeaderDLQStreamSeq), 10, 64)
	if item, _ := ionix.Decode(raw.Data); item.ID != "" {
		res.ID = item.ID
	}
	if res.Subject == "" {
		return res, fmt.Errorf("dead letter %d has no %s header: %w", raw.Sequence, topology.HeaderDLQSubject, ErrSubjectNotInStream)
	}
	if !subjectInStream(res.Subject, subjects) {
		return res, fmt.Errorf("dead letter %d: subject %q is not one of stream %s (%s): %w",
			raw.Sequence, res.Subject, d.names.Stream, strings.Join(subjects, ", "), ErrSubjectNotInStream)
	}

	m := nats.NewMsg(res.Subject)
	for k, vs := range raw.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, dlqHeaderPrefix) || strings.HasPrefix(lk, "nats-") {
			continue
		}
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	// A copy keeps the sequence of the message it copies (a dead letter that was
	// itself re-driven or requeued is as old as its original) — unless that sequence
	// counted in an earlier instance of the stream (deleted and created again since):
	// then the copy is a new event, dated by its own sequence.
	storedAt, err := time.Parse(time.RFC3339Nano, raw.Header.Get(topology.HeaderDLQStoredAt))
	if err == nil && storedAt.Before(to.created) {
		for _, h := range []string{HeaderRedrivenFrom, topology.HeaderRequeuedFrom, topology.HeaderRequeuedReopen} {
			m.Header.Del(h)
		}
	} else if res.StreamSeq > 0 && m.Header.Get(HeaderRedrivenFrom) == "" && m.Header.Get(topology.HeaderRequeuedFrom) == "" {
		m.Header.Set(HeaderRedrivenFrom, strconv.FormatUint(res.StreamSeq, 10))
	}
	m.Data = raw.Data
	if raw.Header.Get(HeaderBodyCut) != "" {
		// The dead letter holds only the beginning of a body near the size limit:
		// re-drive the original, which the main stream still holds until MaxAge.
		orig, err := d.original(ctx, res.StreamSeq, storedAt)
		if err != nil {
			return res, fmt.Errorf("dead letter %d holds a cut body: %w", raw.Sequence, err)
		}
		m.Data = orig
	}
	id := "redrive:" + d.names.DLQStream + ":" + strconv.FormatUint(raw.Sequence, 10)
	ack, err := d.js.PublishMsg(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(d.names.Stream))
	if err != nil {
		return res, fmt.Errorf("re-drive dead letter %d to %s: %w", raw.Sequence, res.Subject, err)
	}
	res.NewSeq, res.Duplicate = ack.Sequence, ack.Duplicate

	if err := dlq.DeleteMsg(ctx, raw.Sequence); err != nil {
		// Deleted meanwhile by another re-drive of the same dead letter: done.
		if _, gerr := dlq.GetMsg(ctx, raw.Sequence); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return res, nil
		}
		return res, fmt.Errorf("dead letter %d was re-driven as sequence %d but could not be deleted (re-driving it again publishes nothing twice): %w",
			raw.Sequence, res.NewSeq, err)
	}
	return res, nil
}

// subjectInStream reports whether subject is a literal subject that one of the
// stream's subject filters takes.
func subjectInStream(subject string, filters []string) bool {
	tokens := strings.Split(subject, ".")
	for _, t := range tokens {
		if t == "" || t == "*" || t == ">" || strings.ContainsAny(t, " \t\r\n") {
			return false
		}
	}
	for _, f := range filters {
		if subjectMatches(strings.Split(f, "."), tokens) {
			return true
		}
	}
	return false
}

// subjectMatches reports whether the subject tokens match the filter tokens, with
// NATS wildcards: * one token, > one or more trailing tokens.
func subjectMatches(filter, subject []string) bool {
	for i, f := range filter {
		if f == ">" {
			return len(subject) > i
		}
		if i >= len(subject) || f != "*" && f != subject[i] {
			return false
		}
	}
	return len(filter) == len(subject)
}

// ErrOriginalGone: a dead letter with a cut body cannot be re-driven once the main
// stream no longer holds its original.
var ErrOriginalGone = errors.New("its original is no longer in the stream")

// original reads the body of the message at seq of the main stream, stored at
// storedAt (another message at that sequence of a newer stream instance is not it).
func (d *Queue) original(ctx context.Context, seq uint64, storedAt time.Time) ([]byte, error) {
	s, err := d.js.Stream(ctx, d.names.Stream)
	if err != nil {
		return nil, fmt.Errorf("action-item stream %s: %w", d.names.Stream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && !storedAt.IsZero() && !m.Time.Equal(storedAt) {
		return nil, fmt.Errorf("sequence %d: %w", seq, ErrOriginalGone)
	}
	if err != nil {
		return nil, fmt.Errorf("sequence %d: %w", seq, err)
	}
	return m.Data, nil
}
