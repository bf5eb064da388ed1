package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Incident is an incident as the Table API returns it (raw values, not
// display values).
type Incident struct {
	SysID, Number, ShortDescription, Description, Category, Impact, Urgency, Priority, State, OpenedAt, CorrelationID string
}

// incidentFields are the columns FindIncidents asks for.
var incidentFields = []string{
	"sys_id", "number", "short_description", "description", "category", "impact",
	"urgency", "priority", "state", "opened_at", "correlation_id",
}

// maxRows bounds a Table API read.
const maxRows = 1000

// FindIncidents reads the incidents whose correlation_id is correlationID:
// GET {instance}/api/now/table/incident?sysparm_query=correlation_id=<cid>.
// ServiceNow silently drops a query condition it cannot apply (an unknown
// field, a field the user may not read) and then returns every row, and it
// compares case-insensitively; so only rows whose correlation_id equals
// correlationID exactly are returned. It needs read access to incident.
func (c *Client) FindIncidents(ctx context.Context, correlationID string) ([]Incident, error) {
	if correlationID == "" {
		return nil, errors.New("servicenow: find incidents: empty correlation id")
	}
	q := url.Values{}
	q.Set("sysparm_query", equalsQuery("correlation_id", correlationID))
	q.Set("sysparm_fields", strings.Join(incidentFields, ","))
	q.Set("sysparm_display_value", "false")
	q.Set("sysparm_exclude_reference_link", "true")
	q.Set("sysparm_limit", strconv.Itoa(maxRows))
	rows, err := c.readTable(ctx, OpFindIncidents, "incident", q)
	if err != nil {
		return nil, err
	}
	var out []Incident
	for _, r := range rows {
		if r["correlation_id"] != correlationID {
			continue
		}
		out = append(out, Incident{
			SysID: r["sys_id"], Number: r["number"], ShortDescription: r["short_description"],
			Description: r["description"], Category: r["category"], Impact: r["impact"],
			Urgency: r["urgency"], Priority: r["priority"], State: r["state"],
			OpenedAt: r["opened_at"], CorrelationID: r["correlation_id"],
		})
	}
	if dropped := len(rows) - len(out); dropped > 0 {
		c.log.Warn().Int("rows", len(rows)).Int("dropped", dropped).
			Msg("ServiceNow returned incidents that do not match the correlation id (query condition dropped? " +
				"check read access to incident.correlation_id); ignored them")
	}
	return out, nil
}

// StagingFieldLengths reads the max lengths of the staging table's columns
// from sys_dictionary (element -> max_length), for doctor to check that name
// and body hold 4000 characters. It needs read access to sys_dictionary.
func (c *Client) StagingFieldLengths(ctx context.Context) (map[string]int, error) {
	q := url.Values{}
	q.Set("sysparm_query", equalsQuery("name", c.cfg.ImportTable)+"^elementISNOTEMPTY")
	q.Set("sysparm_fields", "name,element,max_length")
	q.Set("sysparm_limit", strconv.Itoa(maxRows))
	rows, err := c.readTable(ctx, OpFieldLengths, "sys_dictionary", q)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, r := range rows {
		if r["name"] != c.cfg.ImportTable || r["element"] == "" {
			continue
		}
		n, err := strconv.Atoi(r["max_length"])
		if err != nil {
			continue
		}
		out[r["element"]] = n
	}
	return out, nil
}

// equalsQuery is the encoded query field=value. An encoded query cannot
// carry "^" in a value, so a value with one is queried by its prefix (the
// caller filters the rows exactly).
func equalsQuery(field, value string) string {
	if i := strings.IndexByte(value, '^'); i >= 0 {
		if i == 0 {
			return field + "ISNOTEMPTY"
		}
		return field + "STARTSWITH" + value[:i]
	}
	return field + "=" + value
}

// readTable reads rows of a table through the Table API, each value as a
// string.
func (c *Client) readTable(ctx context.Context, op, table string, q url.Values) ([]map[string]string, error) {
	resp, err := c.do(ctx, op, http.MethodGet, "/api/now/table/"+url.PathEscape(table), q, nil)
	if err != nil {
		return nil, err
	}
	return c.tableRows(op, resp)
}

// tableRows decodes a Table API answer into rows of strings.
func (c *Client) tableRows(op string, resp *response) ([]map[string]string, error) {
	if class := Classify(resp.status, resp.contentType, ""); resp.status < 200 || resp.status > 299 || class != ClassSuccess {
		return nil, c.responseError(op, resp, class)
	}
	var body struct {
		Result []map[string]any `json:"result"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return nil, &Error{Class: ClassTransient, Op: op, StatusCode: resp.status,
			Message: "unreadable Table API response: " + c.red.RedactClip(err.Error(), maxTextMessage)}
	}
	rows := make([]map[string]string, 0, len(body.Result))
	for _, r := range body.Result {
		row := make(map[string]string, len(r))
		for k, v := range r {
			row[k] = stringValue(v)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// stringValue turns a Table API value into a string: strings as they are,
// reference objects {"value","link"} as their value, anything else as text.
func stringValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case map[string]any:
		if s, ok := v["value"].(string); ok {
			return s
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
