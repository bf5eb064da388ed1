package topology

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultRequestTimeout bounds each JetStream API request Ensure makes when
// Options.RequestTimeout is zero: the server answers in milliseconds, even an R3
// create, or not at all.
const DefaultRequestTimeout = 5 * time.Second

// ErrUnanswered says that a JetStream API request got no answer within its own
// timeout while the caller's context still had time. nats-server leaves some requests
// unanswered, for example a stream update that arrives while a replicated create of
// the same stream is in flight (the create may go unanswered too); asking again
// shortly after gets an answer. Starting reports it, so callers retry it.
var ErrUnanswered = errors.New("JetStream request unanswered")

// request makes one JetStream API request (what names it, for the error) under its
// own timeout, derived from ctx: a request left unanswered costs that timeout, not
// the rest of the caller's deadline, and comes back as ErrUnanswered.
func request[T any](ctx context.Context, timeout time.Duration, what string, do func(context.Context) (T, error)) (T, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := do(rctx)
	if err == nil {
		return v, nil
	}
	if ctx.Err() == nil && rctx.Err() != nil {
		return v, fmt.Errorf("%s: %w within %s: %w", what, ErrUnanswered, timeout, err)
	}
	return v, fmt.Errorf("%s: %w", what, err)
}
