package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReportTTL is how long a replica's report of a tenant lasts without being renewed:
// a consume that stopped stops counting.
const ReportTTL = 5 * time.Minute

// Report is what one consume replica last said about one tenant's sending.
type Report struct {
	// Paused is why its sending is paused ("" while it sends).
	Paused string    `json:"paused"`
	At     time.Time `json:"at"`
}

// Reports is where consume replicas say how each tenant's sending goes, for status
// --all (SPEC §9): one key <tenant>.<replica> each in a bucket whose entries expire
// after ReportTTL.
type Reports struct{ kv jetstream.KeyValue }

// NewReports returns the reports over their bucket (topology.EnsureTenantReports).
func NewReports(kv jetstream.KeyValue) *Reports { return &Reports{kv: kv} }

// Put records replica's report of tenant t.
func (r *Reports) Put(ctx context.Context, t, replica string, rep Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, t+"."+replica, b); err != nil {
		return fmt.Errorf("report of tenant %s: %w", t, err)
	}
	return nil
}

// Paused is why tenant t's sending is paused by any replica that reported within
// ReportTTL ("" when none reported a pause), the replicas' reasons joined.
func (r *Reports) Paused(ctx context.Context, t string) (string, error) {
	lister, err := r.kv.ListKeysFiltered(ctx, t+".*")
	if err != nil {
		return "", fmt.Errorf("reports of tenant %s: %w", t, err)
	}
	defer func() { _ = lister.Stop() }()
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	slices.Sort(keys)
	var reasons []string
	for _, k := range keys {
		e, err := r.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reports of tenant %s: %w", t, err)
		}
		var rep Report
		if json.Unmarshal(e.Value(), &rep) == nil && rep.Paused != "" && !slices.Contains(reasons, rep.Paused) {
			reasons = append(reasons, rep.Paused)
		}
	}
	return strings.Join(reasons, "; "), nil
}
