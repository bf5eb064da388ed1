package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
)

// resetPeakRSS starts a new peak resident set size (Linux: writing 5 to
// /proc/self/clear_refs resets VmHWM); it reports whether it could. Elsewhere the
// peak is the process's since it started.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns the peak resident set size in bytes and where it came from:
// VmHWM of /proc/self/status on Linux, otherwise the memory the Go runtime holds
// from the system (runtime.MemStats.Sys), an upper bound of the Go heap's part.
func peakRSS() (n uint64, source string) {
	if n, ok := vmHWM("/proc/self/status"); ok {
		return n, "VmHWM"
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Sys, "MemStats.Sys"
}

// vmHWM reads the VmHWM line ("VmHWM:	  123456 kB") of a /proc status file.
func vmHWM(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	return parseVmHWM(b)
}

func parseVmHWM(status []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb * 1024, true
	}
	return 0, false
}
