package consumer_test

import (
	"os"
	"testing"

	"github.com/ionix/ionixsnow/internal/testkit"
)

// TestMain runs up to 10 tests at once: nearly all of this package's time is spent
// waiting on real servers, redeliveries and backoffs (about 18 s of CPU in a 48 s
// run at the default of one test per core on 2 cores).
func TestMain(m *testing.M) {
	testkit.WaitingParallelism(10)
	os.Exit(m.Run())
}
