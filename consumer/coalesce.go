package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
)

// ErrNoCoalesce is the cause of a halt: ServiceNow answered a re-post of an item that
// already has an incident with a second, new incident, so its transform map does not
// coalesce on correlation_id. Every later update, closing, replay and crash-window
// re-post would duplicate silently; sending halts instead.
var ErrNoCoalesce = errors.New("the transform map does not coalesce on correlation_id")

// FixCoalesce is the setup step that ends a coalesce halt.
const FixCoalesce = "in the transform map of the ionix_action_item web service, map correlation_id to " +
	"Correlation ID with Coalesce checked (README, ServiceNow setup step 4), and set the field's max length " +
	"to 100 (step 3); prove it with `ionixsnow doctor --send-test`, then restart consume"

// IncidentFinder reads the incidents that carry a correlation id (Table API).
// *servicenow.Client implements it.
type IncidentFinder interface {
	FindIncidents(ctx context.Context, correlationID string) ([]servicenow.Incident, error)
}

// Halt is a stop of all sending that outlives the consumer that decided it: a
// consumer built again (over a new NATS connection) with the same Halt halts too.
// Only a new process, started after the fix, sends again.
type Halt struct {
	cause atomic.Pointer[error]
}

// Cause is why sending halted; nil while it has not.
func (h *Halt) Cause() error {
	if p := h.cause.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *Halt) set(err error) { h.cause.CompareAndSwap(nil, &err) }

// secondIncident reports whether an accepted import made a new incident for an item
// whose ledger entry prev (found) already names one: the answer is "inserted" with
// another sys_id. A replay is exempt: it re-sends items whose incident may be gone (an
// instance restored from backup), and a new incident is then what it is for.
func secondIncident(prev Ticket, found bool, res servicenow.Result, replay bool) bool {
	return !replay && found && prev.SysID != "" && res.Status == "inserted" &&
		res.SysID != "" && !strings.EqualFold(res.SysID, prev.SysID)
}

// coalesceVerdict is what a check of a second incident found.
type coalesceVerdict int

const (
	coalesceUnknown coalesceVerdict = iota // the check itself failed
	coalesceWorks                          // the first incident was deleted in ServiceNow
	coalesceBroken
)

// checkCoalesce halts sending when an accepted import of record made a second
// incident for the item (secondIncident) and verifyCoalesce finds that coalesce does
// not work. It reports whether sending halted.
func (c *Consumer) checkCoalesce(ctx context.Context, log zerolog.Logger, id string, record map[string]string, prev Ticket, found bool, res servicenow.Result) bool {
	if !secondIncident(prev, found, res, c.o.Replay != nil) {
		return false
	}
	verdict, why := c.verifyCoalesce(ctx, id, record, res)
	switch verdict {
	case coalesceWorks:
		log.Info().Str("was", prev.Number).Str("incident", res.Number).Str("why", why).
			Msg("the item's incident was deleted in ServiceNow; the post created a new one")
		return false
	case coalesceUnknown:
		log.Warn().Str("was", prev.Number).Str("incident", res.Number).Str("why", why).
			Msg("ServiceNow made a second incident for the item and coalesce could not be checked; the next one is checked again")
		return false
	}
	cause := &servicenow.Error{
		Class: servicenow.ClassConfiguration,
		Op:    "import",
		Message: fmt.Sprintf("ServiceNow created a second incident %s for action item %s, which already has %s (%s)",
			res.Number, ionix.QuoteID(id), prev.Number, why),
		ResultStatus: res.Status,
		Fix:          FixCoalesce,
		Err:          ErrNoCoalesce,
	}
	c.halt.set(cause)
	c.brk.halt(cause)
	return true
}

// verifyCoalesce tells a coalesce failure from an incident deleted in ServiceNow,
// after res (inserted, a new sys_id) answered a re-post of the item id. A Table API
// read by correlation id decides when it works (the new incident alone: deleted);
// without read access (the usual setup) the record is posted once more, with a send
// of the budget like any other: coalesce makes that an update of the new incident,
// its absence a third one.
func (c *Consumer) verifyCoalesce(ctx context.Context, id string, record map[string]string, res servicenow.Result) (coalesceVerdict, string) {
	if c.d.Incidents != nil {
		incidents, err := c.d.Incidents.FindIncidents(ctx, mapping.CorrelationID(id))
		if err == nil {
			switch {
			case len(incidents) == 1 && strings.EqualFold(incidents[0].SysID, res.SysID):
				return coalesceWorks, "the new incident is the only one with the correlation id"
			case len(incidents) == 0:
				return coalesceBroken, "no incident carries the correlation id: correlation_id is not mapped"
			default:
				return coalesceBroken, fmt.Sprintf("%d incidents carry the correlation id", len(incidents))
			}
		}
	}
	grant, err := c.d.Budget.AcquireGrant(ctx, 1)
	if err != nil {
		return coalesceUnknown, "no send to post the item again: " + err.Error()
	}
	if grant.N < 1 {
		return coalesceUnknown, "no send to post the item again"
	}
	again, err := c.d.Importer.Import(ctx, record)
	if Unchanged(again) {
		err = nil
	}
	switch {
	case err != nil:
		return coalesceUnknown, "posting the item again failed: " + err.Error()
	case strings.EqualFold(again.SysID, res.SysID):
		return coalesceWorks, "posted again, it updated the new incident"
	case again.Status == "inserted":
		return coalesceBroken, fmt.Sprintf("posted again, it made a third incident %s", again.Number)
	}
	return coalesceUnknown, fmt.Sprintf("posted again, it answered %s for %s", again.Status, again.Number)
}
