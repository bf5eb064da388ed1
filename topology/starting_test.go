package topology_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/topology"
)

func TestStarting(t *testing.T) {
	api := func(code jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("ensure stream X: %w", &jetstream.APIError{Code: 400, ErrorCode: code, Description: desc})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"JetStream not enabled yet", fmt.Errorf("ensure stream X: %w", jetstream.ErrJetStreamNotEnabled), true},
		{"request timed out", fmt.Errorf("ensure stream X: %w", nats.ErrTimeout), true},
		{"no responders", fmt.Errorf("ensure stream X: %w", nats.ErrNoResponders), true},
		{"one request unanswered", fmt.Errorf("ensure stream X: update: %w within 5s: %w", topology.ErrUnanswered, context.DeadlineExceeded), true},
		{"meta group without leader", api(10008, "JetStream system temporarily unavailable"), true},
		{"peer not heard from yet", api(10005, "no suitable peers for placement, peer offline"), true},
		{"stream still scaling up", api(10126, "consumer config replica count exceeds parent stream"), true},
		{"more replicas than servers", api(10005, "no suitable peers for placement, insufficient resources"), false},
		{"replicas on a single server", api(10074, "replicas > 1 not supported in non-clustered mode"), false},
		{"bad configuration", api(10058, "stream name already in use with a different configuration"), false},
		{"context cancelled", fmt.Errorf("ensure stream X: %w", context.Canceled), false},
		{"the caller's deadline", fmt.Errorf("ensure stream X: update: %w", context.DeadlineExceeded), false},
		{"other", errors.New("connection refused"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := topology.Starting(tc.err); got != tc.want {
				t.Errorf("Starting(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
