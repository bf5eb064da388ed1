package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/topology"
)

// Items of the publish command tests.
const (
	itemDNS   = `{"id":"dns-1","title":{"label":"Dangling CNAME"},"type":"DNS","urgency":{"urgency":8.2}}`
	itemPKI   = `{"id":"pki-1","title":"Certificate expires in 5 days","type":"PKI","urgency":6}`
	itemNoTyp = `{"id":"broken-1","title":"no type here","urgency":5}`
)

func TestPublishDryRunConnectsToNothing(t *testing.T) {
	// Nothing listens on this address; a dry run must not need it.
	unreachable := map[string]string{"IONIXSNOW_NATS_URL": "nats://" + freeAddr(t)}
	changed := strings.Replace(itemDNS, "8.2", "9.9", 1)
	tests := []struct {
		name       string
		input      string
		args       []string
		code       int
		stdout     string
		stderr     []string
		notStderr  []string
		jsonReport *publishReport
	}{
		{
			name:   "valid",
			input:  itemDNS + "\n" + itemPKI + "\n",
			code:   exitOK,
			stdout: "dry run: would publish 2, repeated in input 0, invalid 0 (nothing was sent; duplicates already in the stream are not checked)\n",
		},
		{
			name:   "invalid and repeated items",
			input:  itemDNS + "\n" + itemNoTyp + "\n" + itemDNS + "\n" + changed + "\n" + "{oops\n",
			code:   exitFailed,
			stdout: "dry run: would publish 2, repeated in input 1, invalid 2 (nothing was sent; duplicates already in the stream are not checked)\n",
			stderr: []string{
				`invalid: line 2 (id "broken-1"): `,
				"invalid: line 5: not valid JSON",
				`repeated in input: line 3 (id "dns-1"): same item and version as line 1`,
			},
		},
		{
			name:  "json array as json",
			input: "[\n" + itemDNS + ",\n" + itemNoTyp + ",\n" + itemDNS + "\n]\n",
			args:  []string{"--json"},
			code:  exitFailed,
			jsonReport: &publishReport{Published: 1, Invalid: 1, DryRun: true, Repeated: ptr(1),
				Problems: []reportProblem{{Line: 3, Index: ptr(1), ID: "broken-1", Reason: "type"}},
				Repeats:  []reportRepeat{{Line: 4, Index: ptr(2), ID: "dns-1", FirstLine: 2}},
			},
			notStderr: []string{"invalid:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runInProcess(t, unreachable, tt.input, append([]string{"publish", "--dry-run"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if tt.jsonReport != nil {
				checkReport(t, stdout, *tt.jsonReport)
			} else if stdout != tt.stdout {
				t.Errorf("stdout = %q\nwant     %q", stdout, tt.stdout)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for _, w := range tt.notStderr {
				if strings.Contains(stderr, w) {
					t.Errorf("stderr has %q:\n%s", w, stderr)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("a dry run took %s: did it try to connect?", d)
			}
		})
	}
}

// checkReport compares the --json output with want; a problem's reason need only
// contain want's.
func checkReport(t *testing.T, stdout string, want publishReport) {
	t.Helper()
	var got publishReport
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	if len(got.Problems) != len(want.Problems) {
		t.Fatalf("problems = %+v, want %+v", got.Problems, want.Problems)
	}
	for i, p := range got.Problems {
		w := want.Problems[i]
		if p.Line != w.Line || !equalPtr(p.Index, w.Index) || p.ID != w.ID || !strings.Contains(p.Reason, w.Reason) {
			t.Errorf("problem %d = %s, want %s", i, show(p), show(w))
		}
	}
	got.Problems, want.Problems = nil, nil
	if show(got) != show(want) {
		t.Errorf("report = %s\nwant     %s", show(got), show(want))
	}
}

func TestPublishJSONAgainstAServer(t *testing.T) {
	srv := natstest.Start(t)
	vars := map[string]string{"IONIXSNOW_NATS_URL": srv.URL(), "IONIXSNOW_LOG_FORMAT": "json"}
	file := filepath.Join(t.TempDir(), "items.ndjson")
	input := itemDNS + "\n" + itemNoTyp + "\n" + itemPKI + "\n"
	if err := os.WriteFile(file, []byte(input), 0o600); err != nil {
		t.Fatal(err)
	}
	wantProblems := []reportProblem{{Line: 2, ID: "broken-1", Reason: "type"}}

	code, stdout, stderr := runInProcess(t, vars, "", "publish", "--file", file, "--json")
	if code != exitFailed {
		t.Errorf("exit %d, want %d (an item is invalid); stderr:\n%s", code, exitFailed, stderr)
	}
	checkReport(t, stdout, publishReport{Published: 2, Invalid: 1, Problems: wantProblems})
	if !strings.Contains(stdout, `"index":null`) {
		t.Errorf("an NDJSON problem should have a null index: %s", stdout)
	}
	if strings.Contains(stderr, "invalid:") {
		t.Errorf("--json also wrote the problems to stderr:\n%s", stderr)
	}

	// The same file again, from stdin: nothing new.
	code, stdout, _ = runInProcess(t, vars, input, "publish", "--json", "--max-in-flight", "1")
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	checkReport(t, stdout, publishReport{Duplicate: 2, Invalid: 1, Problems: wantProblems})

	// All valid: exit 0, and the text summary keeps its format.
	code, stdout, stderr = runInProcess(t, vars, itemPKI+"\n", "publish")
	if code != exitOK || stdout != "published 0, duplicate 1, invalid 0\n" {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

// itemOfMessageSize returns a valid item whose message (body and headers, as the
// server counts it against max_payload) takes exactly size bytes.
func itemOfMessageSize(t *testing.T, id string, size int) string {
	t.Helper()
	body := func(pad int) string {
		return `{"id":"` + id + `","title":"Large finding","type":"DNS","urgency":5,"description":"` + strings.Repeat("d", pad) + `"}`
	}
	item, err := ionix.Decode([]byte(body(0)))
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("subject")
	msg.Header.Set(topology.HeaderEvent, string(ionix.EventOpened))
	msg.Header.Set(jetstream.MsgIDHeader, ionix.MsgID(item, ionix.EventOpened))
	msg.Data = []byte(body(0))
	return body(size - (msg.Size() - len(msg.Subject)))
}

// TestPublishSkipsOversizedItemsAndUnreadableLines: from a file or stdin, in
// NDJSON, a JSON array or an IONIX API page, an item whose message exceeds the
// server's 1 MiB max_payload and a line that is not JSON — first, in the middle or
// last — are each named with their line and reason and skipped; everything else
// is published; exit 1. A dry run names the same items without a server.
func TestPublishSkipsOversizedItemsAndUnreadableLines(t *testing.T) {
	const limit = 1 << 20 // nats-server's default max_payload
	atLimit := itemOfMessageSize(t, "at-limit", limit)
	overFirst := itemOfMessageSize(t, "over-first", limit+1)
	overLast := itemOfMessageSize(t, "over-last", limit+1)
	tooLarge := fmt.Sprintf("too large for one NATS message: its message (body and headers) would be %d bytes, over the limit of %d bytes", limit+1, limit)
	inputs := []struct {
		name      string
		input     string
		published int
		problems  []reportProblem
	}{
		{"ndjson", strings.Join([]string{"oops", overFirst, itemDNS, atLimit, "{bad", itemPKI, overLast, "not json either"}, "\n") + "\n", 3,
			[]reportProblem{
				{Line: 1, Reason: "not valid JSON"}, {Line: 2, ID: "over-first", Reason: tooLarge}, {Line: 5, Reason: "not valid JSON"},
				{Line: 7, ID: "over-last", Reason: tooLarge}, {Line: 8, Reason: "not valid JSON"},
			}},
		{"json array", "[\n" + strings.Join([]string{overFirst, itemDNS, atLimit, overLast}, ",\n") + "\n]\n", 2,
			[]reportProblem{{Line: 2, Index: ptr(0), ID: "over-first", Reason: tooLarge}, {Line: 5, Index: ptr(3), ID: "over-last", Reason: tooLarge}}},
		{"ionix api page", `{"count":4,"next":null,"results":[` + strings.Join([]string{overFirst, itemDNS, atLimit, overLast}, ",") + "]}", 2,
			[]reportProblem{{Line: 1, Index: ptr(0), ID: "over-first", Reason: tooLarge}, {Line: 1, Index: ptr(3), ID: "over-last", Reason: tooLarge}}},
	}
	for _, in := range inputs {
		for _, from := range []string{"file", "stdin", "dry run"} {
			t.Run(in.name+"/"+from, func(t *testing.T) {
				vars := map[string]string{"IONIXSNOW_LOG_FORMAT": "json"}
				args := []string{"publish", "--json"}
				stdin := in.input
				switch from {
				case "file":
					file := filepath.Join(t.TempDir(), "items.json")
					if err := os.WriteFile(file, []byte(in.input), 0o600); err != nil {
						t.Fatal(err)
					}
					args, stdin = append(args, "--file", file), ""
					vars["IONIXSNOW_NATS_URL"] = natstest.Start(t).URL()
				case "stdin":
					vars["IONIXSNOW_NATS_URL"] = natstest.Start(t).URL()
				case "dry run":
					args = append(args, "--dry-run")
					vars["IONIXSNOW_NATS_URL"] = "nats://" + freeAddr(t) // nothing listens
				}
				code, stdout, stderr := runInProcess(t, vars, stdin, args...)
				if code != exitFailed {
					t.Errorf("exit %d, want %d; stderr:\n%s", code, exitFailed, stderr)
				}
				want := publishReport{Published: in.published, Invalid: len(in.problems), Problems: in.problems}
				if from == "dry run" {
					want.DryRun, want.Repeated = true, ptr(0)
				}
				checkReport(t, stdout, want)
			})
		}
	}
}

// TestPublishNamesItemsThatWouldMerge: ids that differ only in bytes that are not
// UTF-8, and keys given twice, are named with their line and not published, so
// that two items never become one incident.
func TestPublishNamesItemsThatWouldMerge(t *testing.T) {
	const rest = `"title":"t","type":"DNS","urgency":5`
	input := strings.Join([]string{
		"{\"id\":\"a\xff\"," + rest + "}",
		"{\"id\":\"a\xfe\"," + rest + "}",
		`{"id":"b","id":"c",` + rest + `}`,
		`{"id":"d","title":{"label":"x","label":"y"},"type":"DNS","urgency":5}`,
		itemDNS,
	}, "\n") + "\n"
	vars := map[string]string{"IONIXSNOW_NATS_URL": natstest.Start(t).URL()}
	code, stdout, _ := runInProcess(t, vars, input, "publish", "--json")
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	checkReport(t, stdout, publishReport{Published: 1, Invalid: 4, Problems: []reportProblem{
		{Line: 1, ID: "a\uFFFD", Reason: "id is not valid UTF-8"},
		{Line: 2, ID: "a\uFFFD", Reason: "id is not valid UTF-8"},
		{Line: 3, Reason: `duplicate key "id"`},
		{Line: 4, ID: "d", Reason: `duplicate key "label" in title`},
	}})
}

// TestPublishMaxPayloadFlag: --max-payload sets the limit a dry run checks.
func TestPublishMaxPayloadFlag(t *testing.T) {
	input := itemOfMessageSize(t, "sized", 4096) + "\n" + itemPKI + "\n"
	for _, tt := range []struct {
		limit string
		code  int
		out   string
	}{
		{"4096", exitOK, "would publish 2, repeated in input 0, invalid 0"},
		{"4095", exitFailed, "would publish 1, repeated in input 0, invalid 1"},
	} {
		t.Run(tt.limit, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, nil, input, "publish", "--dry-run", "--max-payload", tt.limit)
			if code != tt.code || !strings.Contains(stdout, tt.out) {
				t.Errorf("exit %d, stdout %q, want exit %d and %q; stderr:\n%s", code, stdout, tt.code, tt.out, stderr)
			}
			if tt.code == exitFailed && !strings.Contains(stderr, `invalid: line 1 (id "sized"): too large for one NATS message: its message (body and headers) would be 4096 bytes, over the limit of 4095 bytes`) {
				t.Errorf("stderr does not name the item, its size and the limit:\n%s", stderr)
			}
		})
	}
}

func TestPublishFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"publish", "--max-in-flight", "0"},
		{"publish", "--event", "reopened"},
		{"publish", "--max-payload", "-1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := runInProcess(t, nil, "", args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
		})
	}
}

func TestPrintPublishResultWhenStopped(t *testing.T) {
	res := publisher.Result{Published: 40, Unconfirmed: 3}
	stopErr := errors.New(`line 41 (id "x"): publish failed 5 times: nats: server is disconnected`)
	tests := []struct {
		name           string
		asJSON         bool
		stdout, stderr string
	}{
		{"text", false, "published 40, duplicate 0, invalid 0\n",
			"ionixsnow publish: stopped: " + stopErr.Error() + "\n" +
				"ionixsnow publish: 3 sent but not confirmed (refused or unanswered); publishing the same input again is safe: the stream drops what it already holds\n"},
		{"json", true, `{"published":40,"duplicate":0,"invalid":0,"dry_run":false,"unconfirmed":3,"problems":[],"error":` + quote(stopErr.Error()) + "}\n",
			"ionixsnow publish: stopped: " + stopErr.Error() + "\n" +
				"ionixsnow publish: 3 sent but not confirmed (refused or unanswered); publishing the same input again is safe: the stream drops what it already holds\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			printPublishResult(&stdout, &stderr, res, stopErr, tt.asJSON)
			if stdout.String() != tt.stdout {
				t.Errorf("stdout = %s\nwant     %s", stdout.String(), tt.stdout)
			}
			if stderr.String() != tt.stderr {
				t.Errorf("stderr = %s\nwant     %s", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestRenderProgress(t *testing.T) {
	mid := publisher.Progress{Read: 4200, Published: 4100, Duplicates: 50, Invalid: 2, BytesRead: 420, Size: 1000, Elapsed: 2 * time.Second}
	big := publisher.Progress{Read: 293468, Published: 293211, Duplicates: 12, Invalid: 3, InFlight: 242, BytesRead: 970, Size: 1000, Elapsed: 5 * time.Second}
	tests := []struct {
		name  string
		p     publisher.Progress
		width int
		want  string
	}{
		{"size known, wide terminal", mid, 120,
			" 42% [#####.......] 4200 read, 4100 published, 50 duplicate, 2 invalid | 2076 items/s | ETA 3s"},
		{"80 columns abbreviate the counts", big, 79,
			" 97% [###########.] 293468 read 293211 pub 12 dup 3 inv | 58645/s | ETA 0s"},
		{"narrower drops the bar", mid, 60,
			" 42% 4200 read 4100 pub 50 dup 2 inv | 2076/s | ETA 3s"},
		{"narrower still cuts the end", mid, 40,
			" 42% 4200 read 4100 pub 50 dup 2 inv | 2"},
		{"document read whole, by line", publisher.Progress{Read: 10, Published: 9, BytesRead: 5000, Size: 5000, Line: 300, Lines: 400, Elapsed: 90 * time.Second}, 120,
			" 75% [#########...] 10 read, 9 published, 0 duplicate, 0 invalid | 0 items/s | ETA 30s"},
		{"read to the end, not yet done", publisher.Progress{Read: 5, Published: 4, BytesRead: 5000, Size: 5000, Elapsed: time.Second}, 120,
			" 99% [###########.] 5 read, 4 published, 0 duplicate, 0 invalid | 4 items/s | ETA 0s"},
		{"nothing read yet", publisher.Progress{Size: 5000, Elapsed: time.Second}, 120,
			"  0% [............] 0 read, 0 published, 0 duplicate, 0 invalid | 0 items/s | ETA --"},
		{"long run", publisher.Progress{Read: 10, Published: 10, BytesRead: 1, Size: 1000, Elapsed: 10 * time.Second}, 120,
			"  0% [............] 10 read, 10 published, 0 duplicate, 0 invalid | 1 items/s | ETA 2h46m"},
		{"size unknown (a pipe)", publisher.Progress{Read: 123456, Published: 123000, Duplicates: 400, Invalid: 56, InFlight: 256, Elapsed: 125 * time.Second}, 120,
			"123456 read, 123000 published, 400 duplicate, 56 invalid | 988 items/s | 2m05s"},
		{"size unknown, narrow", publisher.Progress{Read: 123456, Published: 123000, Duplicates: 400, Invalid: 56, InFlight: 256, Elapsed: 125 * time.Second}, 60,
			"123456 read 123000 pub 400 dup 56 inv | 988/s | 2m05s"},
		{"dry run", publisher.Progress{Read: 30, Published: 20, Repeated: 6, Invalid: 4, DryRun: true, Elapsed: time.Second}, 120,
			"30 read, 20 to publish, 6 repeated, 4 invalid | 30 items/s | 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renderProgress(tt.p, tt.width)
			if got != tt.want {
				t.Errorf("renderProgress =\n%q\nwant\n%q", got, tt.want)
			}
			if len(got) > tt.width {
				t.Errorf("%d characters, more than the width %d", len(got), tt.width)
			}
		})
	}
}

func TestProgressReporterLogsEveryTenSecondsWithoutTerminal(t *testing.T) {
	var logs bytes.Buffer
	e := &env{stderr: &logs, lookupEnv: func(string) (string, bool) { return "", false }}
	r := newProgressReporter(e, strings.NewReader(""), zerolog.New(&logs))
	for _, s := range []int{1, 5, 9, 10, 15, 19, 21, 31} {
		r.report(publisher.Progress{Read: s * 100, Published: s * 100, BytesRead: int64(s), Size: 60, Elapsed: time.Duration(s) * time.Second})
	}
	r.report(publisher.Progress{Read: 3000, Published: 3000, Done: true, Elapsed: 31 * time.Second})
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3 (at 10s, 21s, 31s):\n%s", len(lines), logs.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["message"] != "publishing" || first["published"] != 1000.0 || first["percent"] != 16.0 || first["items_per_second"] != 100.0 {
		t.Errorf("first progress line = %s", lines[0])
	}
	if strings.Contains(logs.String(), "\r") {
		t.Errorf("a progress bar went to a non-terminal:\n%q", logs.String())
	}
}

func ptr[T any](v T) *T { return &v }

func equalPtr(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
