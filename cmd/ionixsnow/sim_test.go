package main

import (
	"bufio"
	"net/http"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// TestSimulatorNamesTheAddressItListensOn: with port 0 the banner gives the port the
// system chose, and the emulator answers there.
func TestSimulatorNamesTheAddressItListensOn(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "servicenow-sim", "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		if s.Scan() {
			line <- s.Text()
		}
		for s.Scan() { // keep the pipe drained
		}
	}()
	var banner string
	select {
	case banner = <-line:
	case <-time.After(10 * time.Second):
		t.Fatal("no banner within 10 s")
	}
	m := regexp.MustCompile(`ServiceNow emulator on (http://127\.0\.0\.1:(\d+)) `).FindStringSubmatch(banner)
	if m == nil || m[2] == "0" {
		t.Fatalf("banner %q does not name the port listened on", banner)
	}
	resp, err := http.Get(m[1] + "/sim/incidents")
	if err != nil {
		t.Fatalf("GET the banner's address: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/sim/incidents: %s", m[1], resp.Status)
	}
}
