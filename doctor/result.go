package doctor

import (
	"fmt"
	"io"
	"strings"
)

// Status is the verdict of one check.
type Status string

// Verdicts. Only StatusFail makes doctor exit non-zero.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// Result is one check's outcome, with the fix when it did not pass.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Passed reports whether no check failed.
func Passed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == StatusFail {
			return false
		}
	}
	return true
}

// Print writes one line per check, and the fix under each that did not pass.
func Print(w io.Writer, rs []Result) {
	width := 0
	for _, r := range rs {
		width = max(width, len(r.Check))
	}
	for _, r := range rs {
		fmt.Fprintf(w, "%-6s %-*s  %s\n", "["+strings.ToUpper(string(r.Status))+"]", width, r.Check, r.Detail)
		if r.Fix != "" {
			fmt.Fprintf(w, "       %*s  fix: %s\n", width, "", r.Fix)
		}
	}
	failed := 0
	for _, r := range rs {
		if r.Status == StatusFail {
			failed++
		}
	}
	if failed == 0 {
		fmt.Fprintln(w, "\nall checks passed")
	} else {
		fmt.Fprintf(w, "\n%d check(s) failed\n", failed)
	}
}
