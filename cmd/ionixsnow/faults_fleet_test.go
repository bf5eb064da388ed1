package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
)

// fleet is a set of consume processes of which any can be killed and replaced.
type fleet struct {
	t     *testing.T
	env   []string
	procs []*proc // running
	all   []*proc // every process started, for the logs
	kills int
	// tenants is how many tenants of the bucket each process serves besides the
	// single-tenant form.
	tenants int
}

// newFleet starts n consume processes one after the other, each once the one before
// has set up the topology: nats-server 2.15.2 has a data race (fileStore.ConsumerStore
// reads fs.cfg unlocked while fileStore.UpdateConfig writes it) that -race reports
// when one process updates the stream while another creates the consumer.
func newFleet(t *testing.T, env []string, n int) *fleet {
	return newFleetServing(t, env, n, 0)
}

// newFleetServing is newFleet for processes that also serve that many tenants of the
// bucket; each is started once it consumes for all of them.
func newFleetServing(t *testing.T, env []string, n, tenants int) *fleet {
	f := &fleet{t: t, env: env, tenants: tenants}
	for range n {
		f.procs = append(f.procs, f.start())
		f.waitConsuming()
	}
	return f
}

func (f *fleet) start() *proc {
	p := startConsume(f.t, "", f.env)
	f.all = append(f.all, p)
	return p
}

// kill9 sends SIGKILL to process i, waits for it to die and starts a new one in its
// place.
func (f *fleet) kill9(i int) {
	f.t.Helper()
	p := f.procs[i]
	if err := p.cmd.Process.Kill(); err != nil {
		f.t.Fatalf("kill -9: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		f.t.Fatal("a process killed with SIGKILL did not exit within 10s")
	}
	f.kills++
	f.procs[i] = f.start()
}

// waitConsuming waits until every running process has set up its consumer (so that
// the next kill hits a process that takes part, and no two processes set up the
// topology at once; see newFleet).
func (f *fleet) waitConsuming() {
	f.t.Helper()
	for _, p := range f.procs {
		testkit.WaitForDiag(f.t, 20*time.Second, "consume to start", func() bool {
			return len(logLines(p, "consuming")) > 0 && len(logLines(p, "consuming for the tenant")) >= f.tenants
		},
			func() string { return tailLines(p.logs.String(), 20) })
	}
}

// replaceExited restarts every process that exited on its own (which consume must
// never do) and reports each as an error with its output.
func (f *fleet) replaceExited() {
	f.t.Helper()
	for i, p := range f.procs {
		select {
		case err := <-p.exited:
			f.t.Errorf("consume process %d exited on its own (%v); its output ends:\n%s", p.cmd.Process.Pid, err, tailLines(p.logs.String(), 40))
			f.procs[i] = f.start()
		default:
		}
	}
}

// stopAll stops every running process with SIGTERM and expects exit 0.
func (f *fleet) stopAll() {
	f.t.Helper()
	for _, p := range f.procs {
		p.stop(f.t)
	}
	f.procs = nil
}

// count is how many log lines with the given message every process started wrote.
func (f *fleet) count(message string) int {
	n := 0
	for _, p := range f.all {
		n += len(logLines(p, message))
	}
	return n
}

// logsTail is the end of every process's output, for failure messages.
func (f *fleet) logsTail(lines int) string {
	var b strings.Builder
	for _, p := range f.all {
		fmt.Fprintf(&b, "--- consume pid %d ---\n%s\n", p.cmd.Process.Pid, tailLines(p.logs.String(), lines))
	}
	return b.String()
}

func tailLines(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// logLines returns the JSON log entries of p whose message is message.
func logLines(p *proc, message string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var entry map[string]any
		if json.Unmarshal(line, &entry) != nil {
			continue
		}
		if entry["message"] == message {
			out = append(out, entry)
		}
	}
	return out
}
