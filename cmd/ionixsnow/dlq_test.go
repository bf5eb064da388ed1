package main

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// dlqFixture is a NATS server in this process with the topology, and the
// environment a dlq command needs to reach it.
type dlqFixture struct {
	js   jetstream.JetStream
	topo *topology.Topology
	vars map[string]string
}

func newDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	topo, err := topology.Ensure(context.Background(), js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &dlqFixture{js: js, topo: topo, vars: map[string]string{
		"IONIXSNOW_NATS_URL":   srv.URL(),
		"IONIXSNOW_LOG_FORMAT": "json",
		"COLUMNS":              "120",
	}}
}

// store publishes one invalid item per id, takes them from the durable consumer and
// stores them as dead letters with reason, as the consumer does. Their dead-letter
// sequences follow in the order of ids.
func (f *dlqFixture) store(t *testing.T, reason string, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		m := nats.NewMsg("ionix.action_items.opened.dns")
		m.Header.Set(topology.HeaderEvent, string(ionix.EventOpened))
		m.Data = []byte(`{"id":"` + id + `","title":"Urgency out of range","type":"DNS","urgency":11}`)
		if _, err := f.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dl := dlq.New(f.js, f.topo.Names)
	batch, err := f.topo.Consumer.Fetch(len(ids), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if err := dl.Put(ctx, m, meta.Sequence.Stream, reason); err != nil {
			t.Fatal(err)
		}
		_ = m.Term()
		n++
	}
	if n != len(ids) {
		t.Fatalf("stored %d of %d dead letters", n, len(ids))
	}
}

func (f *dlqFixture) count(t *testing.T) uint64 {
	t.Helper()
	n, err := dlq.New(f.js, f.topo.Names).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *dlqFixture) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	info, err := f.topo.Stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

const longReason = "invalid action item: urgency 11 outside 0-10; " +
	"and a long explanation that no table column should have to hold in full END-OF-REASON"

func TestDLQList(t *testing.T) {
	f := newDLQFixture(t)
	f.store(t, longReason, "bad-1", "bad-2")
	empty := newDLQFixture(t)

	t.Run("table", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, f.vars, "", "dlq", "list")
		if code != exitOK {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
		lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
		for _, h := range []string{"DLQ SEQ", "STREAM SEQ", "FAILED AT (UTC)", "SUBJECT", "ID", "REASON"} {
			if !strings.Contains(lines[0], h) {
				t.Errorf("header lacks %q: %s", h, lines[0])
			}
		}
		for i, id := range []string{"bad-1", "bad-2"} {
			row := strings.Fields(lines[1+i])
			if len(row) < 6 || row[0] != []string{"1", "2"}[i] || row[1] != row[0] ||
				row[4] != "ionix.action_items.opened.dns" || row[5] != id {
				t.Errorf("row %d = %q, want dead letter %d of stream seq %d, the subject and %s", i, lines[1+i], i+1, i+1, id)
			}
		}
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); n > 120 {
				t.Errorf("line of %d columns is wider than COLUMNS=120: %s", n, l)
			}
		}
		if strings.Contains(stdout, "END-OF-REASON") || !strings.Contains(stdout, "invalid action item: urgency 11") || !strings.Contains(stdout, "…") {
			t.Errorf("the reason is not cut to the table width with a marker:\n%s", stdout)
		}
		if !strings.Contains(stdout, "2 dead letters") || !strings.Contains(stdout, "dlq retry --seq <DLQ SEQ>") {
			t.Errorf("no footer naming the count and which sequence retry takes:\n%s", stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, f.vars, "", "dlq", "list", "--json")
		if code != exitOK {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
		var got []map[string]any
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, stdout)
		}
		if len(got) != 2 {
			t.Fatalf("%d dead letters, want 2", len(got))
		}
		for i, d := range got {
			for _, k := range []string{"stream_seq", "subject", "id", "reason", "failed_at", "dlq_seq"} {
				if _, ok := d[k]; !ok {
					t.Errorf("dead letter %d lacks %q: %v", i, k, d)
				}
			}
			seq := float64(i + 1)
			if d["dlq_seq"] != seq || d["stream_seq"] != seq || d["subject"] != "ionix.action_items.opened.dns" ||
				d["id"] != []string{"bad-1", "bad-2"}[i] || d["reason"] != longReason {
				t.Errorf("dead letter %d = %v", i, d)
			}
			at, _ := d["failed_at"].(string)
			if ts, err := time.Parse(time.RFC3339, at); err != nil || time.Since(ts) > time.Hour {
				t.Errorf("failed_at = %q (%v), want a recent RFC 3339 time", at, err)
			}
		}
	})

	tests := []struct {
		name       string
		fx         *dlqFixture
		args       []string
		want       string
		wantJSONOf int // -1: not JSON
	}{
		{"limit in the table", f, []string{"--limit", "1"}, "showing 1 of 2 dead letters", -1},
		{"limit in JSON", f, []string{"--limit", "1", "--json"}, "", 1},
		{"empty table", empty, nil, "no dead letters\n", -1},
		{"empty JSON", empty, []string{"--json"}, "[]", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tt.fx.vars, "", append([]string{"dlq", "list"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stdout, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, stdout)
			}
			if tt.wantJSONOf >= 0 {
				var got []dlq.Letter
				if err := json.Unmarshal([]byte(stdout), &got); err != nil || len(got) != tt.wantJSONOf {
					t.Errorf("got %d dead letters (%v), want %d:\n%s", len(got), err, tt.wantJSONOf, stdout)
				}
			}
		})
	}
}

func TestDLQRetry(t *testing.T) {
	f := newDLQFixture(t)
	f.store(t, "invalid action item: urgency 11 outside 0-10", "bad-1", "bad-2", "bad-3", "bad-4", "bad-5")
	steps := []struct {
		name                 string
		args                 []string
		wantCode             int
		wantOut, wantErr     []string
		wantLeft, wantStream uint64
	}{
		{"one by its DLQ sequence", []string{"--seq", "1"}, exitOK,
			[]string{"re-drove dead letter 1 (action item bad-1, stream seq 1) to ionix.action_items.opened.dns as stream seq 6"}, nil, 4, 6},
		{"the same again", []string{"--seq", "1"}, exitFailed,
			nil, []string{"dead letter not found", "DLQ SEQ"}, 4, 6},
		{"several, one missing", []string{"--seq", "2", "--seq", "99,3"}, exitFailed,
			[]string{"re-drove dead letter 2 (action item bad-2", "re-drove dead letter 3 (action item bad-3", "re-drove 2 of 3 dead letters"},
			[]string{"sequence 99 of IONIX_DLQ: dead letter not found"}, 2, 8},
		{"all", []string{"--all"}, exitOK, []string{"re-drove 2 dead letters to IONIX_ACTION_ITEMS"}, nil, 0, 10},
		{"all when none are left", []string{"--all"}, exitOK, []string{"no dead letters to re-drive"}, nil, 0, 10},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, f.vars, "", append([]string{"dlq", "retry"}, st.args...)...)
			if code != st.wantCode {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, st.wantCode, stdout, stderr)
			}
			for _, w := range st.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range st.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if n := f.count(t); n != st.wantLeft {
				t.Errorf("%d dead letters left, want %d", n, st.wantLeft)
			}
			if n := f.streamMsgs(t); n != st.wantStream {
				t.Errorf("main stream holds %d messages, want %d", n, st.wantStream)
			}
		})
	}
}

func TestDLQPurge(t *testing.T) {
	f := newDLQFixture(t)
	f.store(t, "invalid", "bad-1", "bad-2", "bad-3")
	steps := []struct {
		name     string
		terminal bool
		stdin    string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
		wantLeft uint64
	}{
		{"no --yes and no terminal", false, "y\n", nil, exitUsage, "", "pass --yes", 3},
		{"declined at the prompt", true, "n\n", nil, exitOK, "nothing purged", "purge 3 dead letters? [y/N]", 3},
		{"no answer at the prompt", true, "", nil, exitOK, "nothing purged", "[y/N]", 3},
		{"confirmed at the prompt", true, "y\n", nil, exitOK, "purged 3 dead letters", "purge 3 dead letters? [y/N]", 0},
		{"--yes with nothing left", false, "", []string{"--yes"}, exitOK, "no dead letters", "", 0},
	}
	origTerminal := dlqStdinIsTerminal
	t.Cleanup(func() { dlqStdinIsTerminal = origTerminal })
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			dlqStdinIsTerminal = func(io.Reader) bool { return st.terminal }
			code, stdout, stderr := runInProcess(t, f.vars, st.stdin, append([]string{"dlq", "purge"}, st.args...)...)
			if code != st.wantCode {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, st.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, st.wantOut) || !strings.Contains(stderr, st.wantErr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q in them", stdout, stderr, st.wantOut, st.wantErr)
			}
			if n := f.count(t); n != st.wantLeft {
				t.Errorf("%d dead letters left, want %d", n, st.wantLeft)
			}
		})
	}

	t.Run("--yes", func(t *testing.T) {
		f.store(t, "invalid", "bad-4", "bad-5")
		dlqStdinIsTerminal = func(io.Reader) bool { return false }
		code, stdout, stderr := runInProcess(t, f.vars, "", "dlq", "purge", "--yes")
		if code != exitOK || !strings.Contains(stdout, "purged 2 dead letters") {
			t.Errorf("exit %d, stdout %q, stderr %q; want purged 2", code, stdout, stderr)
		}
		if n := f.count(t); n != 0 {
			t.Errorf("%d dead letters left", n)
		}
	})
}

func TestDLQUsageErrors(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		want      string
		wantUsage bool
	}{
		{"no subcommand", nil, exitUsage, "a subcommand is required", true},
		{"unknown subcommand", []string{"frob"}, exitUsage, `unknown subcommand "frob"`, true},
		{"retry without --all or --seq", []string{"retry"}, exitUsage, "either --all or one or more --seq", true},
		{"retry with both", []string{"retry", "--all", "--seq", "1"}, exitUsage, "either --all or one or more --seq", true},
		{"retry with a bad sequence", []string{"retry", "--seq", "abc"}, exitUsage, "not a dead-letter sequence", true},
		{"retry with sequence 0", []string{"retry", "--seq", "0"}, exitUsage, "not a dead-letter sequence", true},
		{"list with a negative limit", []string{"list", "--limit", "-1"}, exitUsage, "--limit", true},
		{"list with an argument", []string{"list", "extra"}, exitUsage, "unexpected arguments", false},
		{"purge with a bad flag", []string{"purge", "--force"}, exitUsage, "flag provided but not defined", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No NATS server: a usage error is reported before connecting.
			vars := map[string]string{"IONIXSNOW_NATS_URL": "nats://127.0.0.1:1"}
			code, stdout, stderr := runInProcess(t, vars, "", append([]string{"dlq"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
			if tt.wantUsage && !strings.Contains(stderr, "Usage: ionixsnow dlq") || stdout != "" {
				t.Errorf("no usage on stderr (or output on stdout):\nstdout: %s\nstderr: %s", stdout, stderr)
			}
		})
	}
	code, stdout, _ := runInProcess(t, nil, "", "dlq", "-h")
	if code != exitOK || !strings.Contains(stdout, "retry (--all | --seq N") {
		t.Errorf("dlq -h: exit %d, stdout:\n%s", code, stdout)
	}
}

// TestDLQRetryAfterTheCauseIsFixedBecomesAnIncident runs a real consume process:
// ServiceNow's transform script rejects an item, consume dead-letters it; the script
// is fixed, `dlq retry --seq` re-drives the dead letter by the DLQ SEQ that
// `dlq list --json` shows, and the running consumer turns it into an incident.
func TestDLQRetryAfterTheCauseIsFixedBecomesAnIncident(t *testing.T) {
	const rejectedTitle = "Rejected until the transform script is fixed"
	var reject atomic.Bool
	reject.Store(true)
	r := newFaultRig(t, emulator.Options{OnBefore: func(row map[string]string) (string, string) {
		if reject.Load() && row["u_name"] == rejectedTitle {
			return "error", "rejected by onBefore script"
		}
		return "", ""
	}})
	vars := map[string]string{}
	for _, kv := range r.env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	f := newFleet(t, r.env, 1)
	diag := func() string {
		return r.consumerState() + "\n" + f.logsTail(30)
	}

	it := faultItems("fix", 1, 11)[0]
	it.Title = rejectedTitle
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := publishItem(ctx, publisher.New(r.js, ""), it); err != nil {
		t.Fatal(err)
	}
	testkit.WaitForDiag(t, 30*time.Second, "the rejected item to be dead-lettered", func() bool {
		return r.deadLetterCount() == 1 && r.consumerIdle()
	}, diag)
	if n := len(r.sim.Incidents()); n != 0 {
		t.Fatalf("%d incidents before the fix, want 0", n)
	}

	code, stdout, stderr := runInProcess(t, vars, "", "dlq", "list", "--json")
	var dls []dlq.Letter
	if code != exitOK || json.Unmarshal([]byte(stdout), &dls) != nil || len(dls) != 1 {
		t.Fatalf("dlq list --json: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if dls[0].ID != it.ID || !strings.Contains(dls[0].Reason, "rejected by onBefore script") {
		t.Fatalf("dead letter = %+v, want %s rejected by the script", dls[0], it.ID)
	}

	reject.Store(false) // the ServiceNow admin fixes the transform script
	code, stdout, stderr = runInProcess(t, vars, "", "dlq", "retry", "--seq", strconv.FormatUint(dls[0].DLQSeq, 10))
	if code != exitOK || !strings.Contains(stdout, "re-drove dead letter") {
		t.Fatalf("dlq retry: exit %d\n%s\n%s", code, stdout, stderr)
	}
	testkit.WaitForDiag(t, 30*time.Second, "the re-driven item to become an incident", func() bool {
		return len(r.sim.Incidents()) == 1 && r.consumerIdle()
	}, diag)
	f.stopAll()

	in := r.sim.Incidents()[0]
	if in.CorrelationID != "ionix:"+it.ID || in.ShortDescription != rejectedTitle || in.Inserts != 1 {
		t.Errorf("incident = %+v, want one insert of %s", in, it.ID)
	}
	code, stdout, _ = runInProcess(t, vars, "", "dlq", "list")
	if code != exitOK || stdout != "no dead letters\n" {
		t.Errorf("dlq list after the re-drive: exit %d\n%s", code, stdout)
	}
}
