package testkit

import (
	"flag"
	"runtime"
	"strconv"
)

// WaitingParallelism raises how many parallel tests run at once (the -parallel flag)
// to at least n, unless the command line set it. It is for packages whose tests
// mostly wait — on servers, redeliveries and timers — rather than compute: -parallel
// defaults to GOMAXPROCS, which on a 2-core machine leaves such a package idle most of
// its run. Call it from TestMain before m.Run.
func WaitingParallelism(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			set = true
		}
	})
	if set || n <= runtime.GOMAXPROCS(0) {
		return
	}
	_ = flag.Set("test.parallel", strconv.Itoa(n))
}
