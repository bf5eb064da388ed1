package publisher

// Helpers of the package's own tests that the poller tests (package
// publisher_test) use too.
var (
	StartServerWithMaxPayload = startServerWithMaxPayload
	ItemOfSize                = itemOfSize
)
