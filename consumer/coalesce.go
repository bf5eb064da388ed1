package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// secondIncident reports whether an accepted import made a new incident for an item
// whose ledger entry prev (found) already names one: the answer is "inserted" with
// another sys_id. A replay is exempt: it re-sends items whose incident may be gone (an
// instance restored from backup), and a new incident is then what it is for.
func secondIncident(prev Ticket, found bool, res servicenow.Result, replay bool) bool {
	return !replay && found && prev.SysID != "" && res.Status == "inserted" &&
		res.SysID != "" && !strings.EqualFold(res.SysID, prev.SysID)
}

// checkCoalesce halts sending when an accepted import made a second incident for an
// item (secondIncident), unless a Table API read shows the item has only the new one
// (its first incident was deleted in ServiceNow: then a new one is right). A read
// that fails counts as a second incident. It reports whether sending halted.
func (c *Consumer) checkCoalesce(ctx context.Context, id string, prev Ticket, found bool, res servicenow.Result) bool {
	if !secondIncident(prev, found, res, c.o.Replay != nil) {
		return false
	}
	if c.d.Incidents != nil {
		incidents, err := c.d.Incidents.FindIncidents(ctx, mapping.CorrelationID(id))
		if err == nil && len(incidents) <= 1 {
			c.d.Log.Info().Str("action_item", id).Str("was", prev.Number).Str("incident", res.Number).
				Msg("the item's incident was deleted in ServiceNow; the post created a new one")
			return false
		}
	}
	cause := &servicenow.Error{
		Class: servicenow.ClassConfiguration,
		Op:    "import",
		Message: fmt.Sprintf("ServiceNow created a second incident %s for action item %s, which already has %s",
			res.Number, shortID(id), prev.Number),
		ResultStatus: res.Status,
		Fix:          FixCoalesce,
		Err:          ErrNoCoalesce,
	}
	c.brk.halt(cause)
	return true
}

// shortID quotes an id for a message, cut to 80 bytes.
func shortID(id string) string {
	const max = 80
	if len(id) > max {
		cut := max
		for cut > 0 && !utf8RuneStart(id[cut]) {
			cut--
		}
		id = id[:cut] + "…"
	}
	return fmt.Sprintf("%q", id)
}
