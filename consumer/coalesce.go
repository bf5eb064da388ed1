package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/ledger"
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
func secondIncident(prev ledger.Ticket, found bool, res servicenow.Result, replay bool) bool {
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
// not work. It reports whether it posted the item again to tell.
// The post's delivery d gives the message, the item and Run's context (its waits end
// with it); log names the incident.
func (c *Consumer) checkCoalesce(ctx context.Context, d *delivery, log zerolog.Logger, record map[string]string, prev ledger.Ticket, found bool, res servicenow.Result) (reposted bool) {
	id := d.item.ID
	if !secondIncident(prev, found, res, c.mode().replay) {
		return false
	}
	verdict, reposted, why := c.verifyCoalesce(ctx, d, record, res)
	switch verdict {
	case coalesceWorks:
		log.Info().Str("was", prev.Number).Str("incident", res.Number).Str("why", why).
			Msg("the item's incident was deleted in ServiceNow; the post created a new one")
		return reposted
	case coalesceUnknown:
		log.Warn().Str("was", prev.Number).Str("incident", res.Number).Str("why", why).
			Msg("ServiceNow made a second incident for the item and coalesce could not be checked; the next one is checked again")
		return reposted
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
	c.brk.halt(cause)
	return reposted
}

// verifyCoalesce tells a coalesce failure from an incident deleted in ServiceNow,
// after res (inserted, a new sys_id) answered a re-post of the item id. A Table API
// read by correlation id decides when it shows the new incident (alone: the old one
// was deleted; with others: no coalesce). A read that fails, or does not show the
// new incident (no read access to incidents or to the correlation_id field, or the
// field not mapped), leaves it to posting the record once more, with a send of the
// budget like any other: coalesce makes that an update of the new incident, its
// absence a third one. Nothing is checked, nor posted, once sending has halted.
func (c *Consumer) verifyCoalesce(ctx context.Context, d *delivery, record map[string]string, res servicenow.Result) (verdict coalesceVerdict, reposted bool, why string) {
	msg, id := d.msg, d.item.ID
	if c.brk.isHalted() {
		return coalesceBroken, false, "sending has halted already"
	}
	if c.d.Incidents != nil {
		incidents, err := c.d.Incidents.FindIncidents(ctx, mapping.CorrelationID(id))
		if err == nil && slices.ContainsFunc(incidents, func(in servicenow.Incident) bool { return strings.EqualFold(in.SysID, res.SysID) }) {
			if len(incidents) == 1 {
				return coalesceWorks, false, "the new incident is the only one with the correlation id"
			}
			return coalesceBroken, false, fmt.Sprintf("%d incidents carry the correlation id", len(incidents))
		}
	}
	stop := c.keepAlive(msg) // the wait for a send can be long at the cap
	defer stop()
	// The waits end with Run's context: a stopping tenant does not post again (the
	// next second incident is checked again).
	wctx, waited := d.waitCtx(ctx)
	defer waited()
	grant, err := c.d.Budget.AcquireGrant(wctx, 1)
	if err != nil || grant.N < 1 {
		return coalesceUnknown, false, fmt.Sprintf("no send to post the item again (%v)", err)
	}
	release, err := c.readyToSend(wctx, &delivery{msg: msg, grant: &grant})
	if err != nil {
		c.releaseGrant(context.WithoutCancel(ctx), grant, grant.N)
		return coalesceUnknown, false, fmt.Sprintf("no send to post the item again (%v)", err)
	}
	if c.brk.isHalted() { // another post found it meanwhile
		release()
		c.releaseGrant(context.WithoutCancel(ctx), grant, grant.N)
		return coalesceBroken, false, "sending has halted already"
	}
	again, err := c.d.Importer.Import(ctx, record)
	release()
	if Unchanged(again) {
		err = nil
	}
	switch {
	case err != nil:
		return coalesceUnknown, true, "posting the item again failed: " + err.Error()
	case strings.EqualFold(again.SysID, res.SysID):
		return coalesceWorks, true, "posted again, it updated the new incident"
	case again.Status == "inserted":
		return coalesceBroken, true, fmt.Sprintf("posted again, it made a third incident %s", again.Number)
	}
	return coalesceUnknown, true, fmt.Sprintf("posted again, it answered %s for %s", again.Status, again.Number)
}

// requeueIfOvertaken puts the newest version of the item back on the stream when the
// ledger now records an event newer than ours (at, posted as t) that our later post —
// the coalesce check's — may have overwritten in ServiceNow.
func (c *Consumer) requeueIfOvertaken(ctx context.Context, log zerolog.Logger, id string, t ledger.Ticket, at eventAt, by uint64) {
	cur, found, err := c.d.Ledger.Get(ctx, id)
	if err != nil {
		log.Warn().Err(err).Msg("could not read the ledger after posting the item again; a newer version may show older values until the item changes again")
		return
	}
	if rq, ok := afterRepost(t, cur, found, at, c.mode()); ok {
		c.requeueNewest(ctx, log, rq, by)
	}
}
