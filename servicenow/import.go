package servicenow

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Result is the outcome of one import, from the Import Set API response
// {"import_set","staging_table","result":[{...}]}. With several transform
// maps ServiceNow answers one result per map; Result describes the first.
type Result struct {
	ImportSet    string // e.g. "ISET0010001"
	StagingTable string // e.g. "u_ionix_action_item"
	TransformMap string
	Table        string // target table, "incident"
	Number       string // display_value, e.g. "INC0010001"
	SysID        string // the incident's sys_id
	Status       string // inserted | updated | ignored | skipped | error
	ErrorMessage string // error_message (or status_message) of the result
	RecordLink   string
}

// importResponse is the body of an Import Set API response.
type importResponse struct {
	ImportSet    string `json:"import_set"`
	StagingTable string `json:"staging_table"`
	Result       []struct {
		TransformMap  string `json:"transform_map"`
		Table         string `json:"table"`
		DisplayName   string `json:"display_name"`
		DisplayValue  string `json:"display_value"`
		RecordLink    string `json:"record_link"`
		Status        string `json:"status"`
		SysID         string `json:"sys_id"`
		ErrorMessage  string `json:"error_message"`
		StatusMessage string `json:"status_message"`
	} `json:"result"`
}

// Import posts one record (a JSON object of strings) to
// POST {instance}/api/now/import/{ImportTable}. It succeeds only when every
// result says inserted or updated; otherwise the error is an [*Error]
// classified by [Classify], and Result holds what ServiceNow answered.
func (c *Client) Import(ctx context.Context, record map[string]string) (Result, error) {
	body, err := json.Marshal(record)
	if err != nil { // cannot happen with map[string]string
		return Result{}, &Error{Class: ClassPermanent, Op: OpImport, Message: err.Error()}
	}
	resp, err := c.do(ctx, OpImport, http.MethodPost, "/api/now/import/"+url.PathEscape(c.cfg.ImportTable), nil, body)
	if err != nil {
		return Result{}, err
	}
	return c.importResult(resp)
}

func (c *Client) importResult(resp *response) (Result, error) {
	if class := Classify(resp.status, resp.contentType, ""); resp.status < 200 || resp.status > 299 || class != ClassSuccess {
		return Result{}, c.responseError(OpImport, resp, class)
	}
	var ir importResponse
	if err := json.Unmarshal(resp.body, &ir); err != nil {
		// The row may or may not have been written; coalesce makes a
		// retry safe.
		return Result{}, &Error{Class: ClassTransient, Op: OpImport, StatusCode: resp.status,
			Message: "unreadable import response: " + c.red.RedactClip(err.Error(), maxTextMessage)}
	}
	// Every text of the answer is redacted: the caller logs and stores them.
	text := func(s string) string { return c.red.RedactClip(s, maxJSONMessage) }
	res := Result{ImportSet: text(ir.ImportSet), StagingTable: text(ir.StagingTable)}
	if len(ir.Result) == 0 {
		return res, &Error{Class: ClassConfiguration, Op: OpImport, StatusCode: resp.status,
			Message: "import answered without a result", Fix: fixNoTransformMap}
	}
	for i, r := range ir.Result {
		msg := r.ErrorMessage
		if msg == "" {
			msg = r.StatusMessage
		}
		// ServiceNow writes the status in lower case; one written otherwise is
		// the same status (Classify compares it so).
		status := strings.ToLower(strings.TrimSpace(text(r.Status)))
		shown := text(msg)
		if i == 0 {
			res.TransformMap, res.Table, res.Number, res.SysID = text(r.TransformMap), text(r.Table), text(r.DisplayValue), text(r.SysID)
			res.Status, res.ErrorMessage, res.RecordLink = status, shown, text(r.RecordLink)
		}
		class := Classify(resp.status, resp.contentType, r.Status)
		if status == "" {
			// A result row that does not say what happened to it: a transform
			// script or a proxy changed the answer. Not a success to ledger.
			class, shown = ClassConfiguration, "import result without a status"
		}
		if class == ClassSuccess {
			continue
		}
		e := &Error{Class: class, Op: OpImport, StatusCode: resp.status, ResultStatus: status, Message: shown}
		if class == ClassConfiguration {
			e.Fix = fixUnknownStatus
		}
		c.log.Debug().Str("status", status).Str("number", res.Number).Msg("import not accepted")
		return res, e
	}
	c.log.Debug().Str("status", res.Status).Str("number", res.Number).Msg("imported")
	return res, nil
}
