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
// coalesces on it, so repeated runs update one incident instead of adding more.
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

// sendTest imports a marked test item whose name and body are longer than 40
// characters, and reads the incident back to see whether they arrived whole.
func sendTest(ctx context.Context, o Options, client *servicenow.Client) []Result {
	item := ionix.ActionItem{
		ID:          TestItemID,
		Title:       "[ionixsnow doctor] test incident, safe to resolve or delete — sent " + time.Now().UTC().Format("2006-01-02 15:04:05"),
		Type:        "IONIX Test",
		Urgency:     1,
		Summary:     "This incident was created by `ionixsnow doctor --send-test` to prove the integration end to end.",
		Description: "Every run of doctor --send-test updates this same incident (coalesce on its correlation id).",
	}
	opts := mapping.DefaultOptions()
	opts.FieldPrefix = o.Config.ServiceNow.FieldPrefix
	record, err := mapping.ToRecord(item, opts)
	if err != nil {
		return []Result{{Check: "send_test", Status: StatusFail, Detail: err.Error()}}
	}
	res, err := client.Import(ctx, record)
	if err != nil {
		return []Result{{Check: "send_test", Status: StatusFail, Detail: err.Error(), Fix: fixOf(err)}}
	}
	rs := []Result{{Check: "send_test", Status: StatusOK, Detail: fmt.Sprintf("incident %s %s (transform map %s)", res.Number, res.Status, res.TransformMap)}}
	incs, err := client.FindIncidents(ctx, mapping.CorrelationID(TestItemID))
	if err != nil || len(incs) != 1 {
		detail := fmt.Sprintf("found %d incidents with the test correlation id", len(incs))
		if err != nil {
			detail = "cannot read the test incident back (" + shortClass(err) + ")"
		}
		return append(rs, Result{Check: "field_truncation", Status: StatusWarn,
			Detail: detail + "; open " + res.Number + " and check that its short description and description are not cut at 40 characters",
			Fix:    fixReadAccess})
	}
	inc := incs[0]
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
