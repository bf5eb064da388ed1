package doctor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow"
)

// TestItemID is the action item id of doctor's test incident. Every --send-test
// sends it twice and checks that the second send updates the incident of the
// first (coalesce), so repeated runs update one incident instead of adding more.
const TestItemID = "ionixsnow-doctor-test"

// checkImportTable asks ServiceNow whether the integration may use the import table,
// without creating anything.
func checkImportTable(ctx context.Context, client *servicenow.Client) Result {
	r := Result{Check: "import_table"}
	if err := client.Probe(ctx); err != nil {
		r.Status, r.Detail, r.Fix = StatusFail, err.Error(), fixOf(err)
		return r
	}
	r.Status, r.Detail = StatusOK, "the import table "+client.ImportTable()+" exists and the user may use it"
	return r
}

// checkFieldLengths reads the staging columns' max lengths, when the user may.
func checkFieldLengths(ctx context.Context, client *servicenow.Client) Result {
	r := Result{Check: "field_lengths"}
	lengths, err := client.StagingFieldLengths(ctx)
	if err != nil {
		r.Status = StatusSkip
		r.Detail = "cannot read the table definition (" + shortClass(err) + "); `doctor --send-test` checks the lengths by sending"
		return r
	}
	var short []string
	for _, f := range []struct {
		name string
		min  int
	}{{"name", mapping.MaxNameLen}, {"body", mapping.MaxBodyLen}, {"correlation_id", mapping.MaxCorrelationIDLen}} {
		col := "u_" + f.name
		if n, ok := lengths[col]; ok && n < f.min {
			short = append(short, fmt.Sprintf("%s is %d (needs %d)", col, n, f.min))
		} else if !ok {
			short = append(short, col+" is missing")
		}
	}
	if len(short) > 0 {
		r.Status, r.Detail, r.Fix = StatusFail, strings.Join(short, "; "), fixFieldSize
		return r
	}
	r.Status, r.Detail = StatusOK, "name and body hold 4000 characters, correlation_id 100"
	return r
}

// Fixes of the send test's coalesce check, naming the setup step.
const (
	fixCoalesce = "open the transform map ionix_action_item and tick Coalesce on the field map correlation_id → Correlation ID " +
		"(README ServiceNow setup, step 4); without it every update, closing and retry creates another incident. " +
		"Then resolve or delete the extra test incidents"
	fixCorrelationUnmapped = "add the field map correlation_id → Correlation ID with Coalesce ticked to the transform map ionix_action_item " +
		"(README ServiceNow setup, step 4; the web service needs the field correlation_id, step 2). " +
		"Then resolve or delete the extra test incidents"
)

// sendTest imports a marked test item twice and reads its incident back. The
// second send differs from the first (the time of the send is in the body, so
// an instance that ignores unchanged rows still updates), and must update the
// incident of the first: otherwise ServiceNow does not coalesce on
// correlation_id, and every re-post would duplicate. The name and body are
// longer than 40 characters, to see whether they arrive whole.
func sendTest(ctx context.Context, o Options, client *servicenow.Client) []Result {
	opts := mapping.DefaultOptions()
	opts.FieldPrefix = o.Config.ServiceNow.FieldPrefix
	first, _, err := sendTestItem(ctx, client, opts, 1)
	if err != nil {
		return []Result{{Check: "send_test", Status: StatusFail, Detail: err.Error(), Fix: fixOf(err)}}
	}
	rs := []Result{{Check: "send_test", Status: StatusOK, Detail: fmt.Sprintf("incident %s %s (transform map %s)", first.Number, first.Status, first.TransformMap)}}
	second, record, err := sendTestItem(ctx, client, opts, 2)
	incs, readErr := client.FindIncidents(ctx, mapping.CorrelationID(TestItemID))
	rs = append(rs, checkCoalesce(first, second, err, incs, readErr))
	if second.SysID == "" {
		return rs
	}

	var inc *servicenow.Incident
	for i := range incs {
		if incs[i].SysID == second.SysID {
			inc = &incs[i]
		}
	}
	if inc == nil {
		detail := fmt.Sprintf("found no incident %s with the test correlation id", second.Number)
		if readErr != nil {
			detail = "cannot read the test incident back (" + shortClass(readErr) + ")"
		}
		return append(rs, Result{Check: "field_truncation", Status: StatusWarn,
			Detail: detail + "; open " + second.Number + " and check that its short description and description are not cut at 40 characters",
			Fix:    fixReadAccess})
	}
	var cut []string
	if sent := record[opts.Field(mapping.FieldName)]; inc.ShortDescription != sent && utf8.RuneCountInString(inc.ShortDescription) <= 40 {
		cut = append(cut, fmt.Sprintf("name arrived as %d of %d characters", utf8.RuneCountInString(inc.ShortDescription), utf8.RuneCountInString(sent)))
	}
	if sent := record[opts.Field(mapping.FieldBody)]; inc.Description != sent && utf8.RuneCountInString(inc.Description) <= 40 {
		cut = append(cut, fmt.Sprintf("body arrived as %d of %d characters", utf8.RuneCountInString(inc.Description), utf8.RuneCountInString(sent)))
	}
	if len(cut) > 0 {
		return append(rs, Result{Check: "field_truncation", Status: StatusFail, Detail: strings.Join(cut, "; ") + " (cut at 40: the max-length step was missed)", Fix: fixFieldSize})
	}
	return append(rs, Result{Check: "field_truncation", Status: StatusOK,
		Detail: fmt.Sprintf("%s holds the whole name and body; priority %s from impact %s, urgency %s", inc.Number, inc.Priority, inc.Impact, inc.Urgency)})
}

// sendTestItem imports the test item for the nth send and returns what
// ServiceNow answered and the record sent.
func sendTestItem(ctx context.Context, client *servicenow.Client, opts mapping.Options, n int) (servicenow.Result, map[string]string, error) {
	now := time.Now().UTC()
	item := ionix.ActionItem{
		ID:      TestItemID,
		Title:   "[ionixsnow doctor] test incident, safe to resolve or delete — sent " + now.Format("2006-01-02 15:04:05"),
		Type:    "IONIX Test",
		Urgency: 1,
		Summary: "This incident was created by `ionixsnow doctor --send-test` to prove the integration end to end.",
		Description: fmt.Sprintf("Every run of doctor --send-test sends this item twice and updates this same incident "+
			"(coalesce on its correlation id). Send %d of 2 at %s.", n, now.Format(time.RFC3339Nano)),
	}
	record, err := mapping.ToRecord(item, opts)
	if err != nil {
		return servicenow.Result{}, nil, err
	}
	res, err := client.Import(ctx, record)
	return res, record, err
}

// checkCoalesce judges the second send of the test item: it must update (or,
// unchanged, be ignored by) the incident of the first.
func checkCoalesce(first, second servicenow.Result, err error, incs []servicenow.Incident, readErr error) Result {
	r := Result{Check: "coalesce"}
	sameIncident := second.SysID != "" && second.SysID == first.SysID
	switch {
	case sameIncident && (second.Status == "updated" || second.Status == "ignored"):
		r.Status, r.Detail = StatusOK, fmt.Sprintf("a second send of the test item %s %s (coalesce on correlation_id)", second.Status, second.Number)
	case err != nil && second.Status != "ignored":
		r.Status, r.Detail, r.Fix = StatusFail, "the second send of the test item failed: "+err.Error(), fixOf(err)
	default:
		r.Status, r.Fix = StatusFail, fixCoalesce
		r.Detail = fmt.Sprintf("a second send of the same test item answered %s %s, not an update of %s: ServiceNow does not coalesce on correlation_id",
			second.Status, second.Number, first.Number)
		if readErr == nil && len(incs) == 0 {
			r.Detail += "; the incidents carry no correlation id, so correlation_id is not mapped"
			r.Fix = fixCorrelationUnmapped
		}
	}
	return r
}

// fixOf returns the fix a ServiceNow error carries, or a generic one.
func fixOf(err error) string {
	var se *servicenow.Error
	if errors.As(err, &se) && se.Fix != "" {
		return se.Fix
	}
	return "see the error; run doctor again once ServiceNow answers"
}

func shortClass(err error) string {
	var se *servicenow.Error
	if errors.As(err, &se) && se.StatusCode != 0 {
		return fmt.Sprintf("HTTP %d", se.StatusCode)
	}
	return servicenow.ErrorClass(err).String()
}
