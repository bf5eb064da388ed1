package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// defaultTableLimit is the Table API's default sysparm_limit.
const defaultTableLimit = 10000

// incidentFields are the incident columns the Table API returns, in order.
var incidentFields = []string{
	"sys_id", "number", "short_description", "description", "category", "impact", "urgency",
	"priority", "state", "opened_at", "correlation_id", "close_notes", "active",
	"sys_created_on", "sys_updated_on", "sys_mod_count",
}

func incidentRow(inc *Incident) map[string]string {
	active := "true"
	switch inc.State {
	case "6", "7", "8": // Resolved, Closed, Canceled
		active = "false"
	}
	return map[string]string{
		"sys_id":            inc.SysID,
		"number":            inc.Number,
		"short_description": inc.ShortDescription,
		"description":       inc.Description,
		"category":          inc.Category,
		"impact":            inc.Impact,
		"urgency":           inc.Urgency,
		"priority":          inc.Priority,
		"state":             inc.State,
		"opened_at":         inc.OpenedAt,
		"correlation_id":    inc.CorrelationID,
		"close_notes":       inc.CloseNotes,
		"active":            active,
		"sys_created_on":    inc.CreatedAt.UTC().Format(DateTimeLayout),
		"sys_updated_on":    inc.UpdatedAt.UTC().Format(DateTimeLayout),
		"sys_mod_count":     strconv.Itoa(inc.Updates),
	}
}

// dictionaryFields are the sys_dictionary columns the Table API returns.
var dictionaryFields = []string{"sys_id", "name", "element", "column_label", "internal_type", "max_length"}

// dictionaryRows describes the staging table's columns, so that a client
// can check their max lengths; s.mu must be held.
func (s *Server) dictionaryRows() []map[string]string {
	rows := make([]map[string]string, 0, len(stagingColumns))
	for i, c := range stagingColumns {
		rows = append(rows, map[string]string{
			"sys_id":        fmt.Sprintf("%032x", i+1),
			"name":          s.opt.ImportTable,
			"element":       s.opt.FieldPrefix + c,
			"column_label":  c,
			"internal_type": "string",
			"max_length":    strconv.Itoa(s.maxLength(c)),
		})
	}
	return rows
}

// rows returns the rows and columns of a table the Table API serves.
func (s *Server) rows(table string) (rows []map[string]string, fields []string, ok bool) {
	switch table {
	case "incident":
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, inc := range s.incidents {
			rows = append(rows, incidentRow(inc))
		}
		return rows, incidentFields, true
	case "sys_dictionary":
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.dictionaryRows(), dictionaryFields, true
	}
	return nil, nil, false
}

// handleTable serves GET /api/now/table/{table}.
func (s *Server) handleTable(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, http.MethodGet)
		return
	}
	table := r.PathValue("table")
	rows, fields, ok := s.rows(table)
	if !ok {
		record(r).Note = "unknown table " + table
		writeError(w, http.StatusBadRequest, "Invalid table "+table, "")
		return
	}
	if s.rights().readDenied(table) {
		record(r).Note = "no read access to " + table
		writeError(w, http.StatusForbidden, "Insufficient rights to query records",
			"Field(s) present in the query do not have permission to be read")
		return
	}
	q := r.URL.Query()
	limit, offset := defaultTableLimit, 0
	if v, err := strconv.Atoi(q.Get("sysparm_limit")); err == nil && v > 0 {
		limit = v
	}
	if v, err := strconv.Atoi(q.Get("sysparm_offset")); err == nil && v > 0 {
		offset = v
	}
	query := parseQuery(q.Get("sysparm_query"), fields)
	var matched []map[string]string
	for _, row := range rows {
		if query.match(row) {
			matched = append(matched, row)
		}
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(matched)))
	matched = matched[min(offset, len(matched)):]
	matched = matched[:min(limit, len(matched))]
	result := make([]map[string]string, 0, len(matched))
	for _, row := range matched {
		result = append(result, project(row, q.Get("sysparm_fields")))
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

// handleTableRecord serves GET and DELETE /api/now/table/{table}/{sys_id}.
func (s *Server) handleTableRecord(w http.ResponseWriter, r *http.Request) {
	table, id := r.PathValue("table"), r.PathValue("sys_id")
	rows, _, ok := s.rows(table)
	if !ok {
		record(r).Note = "unknown table " + table
		writeError(w, http.StatusBadRequest, "Invalid table "+table, "")
		return
	}
	notFound := func() {
		writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
	}
	switch r.Method {
	case http.MethodGet:
		if s.rights().readDenied(table) {
			record(r).Note = "no read access to " + table
			notFound() // a record the user may not read does not exist for them
			return
		}
		i := slices.IndexFunc(rows, func(row map[string]string) bool { return row["sys_id"] == id })
		if i < 0 {
			notFound()
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": project(rows[i], r.URL.Query().Get("sysparm_fields"))})
	case http.MethodDelete:
		if table != "incident" {
			writeError(w, http.StatusForbidden, "Operation Failed", "ACL Exception Delete Failed due to security constraints")
			return
		}
		if !s.DeleteIncident(id) {
			notFound()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, r, http.MethodGet, http.MethodDelete)
	}
}

// project keeps the fields named in sysparm_fields (comma separated);
// unknown names are ignored, and an empty list keeps every field.
func project(row map[string]string, fieldList string) map[string]string {
	if strings.TrimSpace(fieldList) == "" {
		return row
	}
	out := map[string]string{}
	for f := range strings.SplitSeq(fieldList, ",") {
		f = strings.TrimSpace(f)
		if v, ok := row[f]; ok {
			out[f] = v
		}
	}
	return out
}

// An encoded query: groups joined by ^NQ (or), each a list of terms joined
// by ^ (and), each term a list of conditions joined by ^OR.
type encodedQuery [][][]condition

type condition struct {
	field, op, value string
}

// operators, longest first where one is a prefix of another.
var operators = []string{"!=", "NOTLIKE", "LIKE", "STARTSWITH", "ENDSWITH", "ISNOTEMPTY", "ISEMPTY", "NOT IN", "IN", "="}

// parseQuery parses sysparm_query. As on a real instance, a condition on a
// field the table does not have, or with an operator this emulator does not
// know, is dropped: it matches every row. ORDERBY and EQ parts are ignored.
func parseQuery(q string, fields []string) encodedQuery {
	var out encodedQuery
	if q == "" {
		return out
	}
	for group := range strings.SplitSeq(q, "^NQ") {
		var terms [][]condition
		for part := range strings.SplitSeq(group, "^") {
			switch {
			case part == "" || part == "EQ" || strings.HasPrefix(part, "ORDERBY"):
				continue
			case strings.HasPrefix(part, "OR") && len(terms) > 0:
				c, ok := parseCondition(part[2:], fields)
				last := len(terms) - 1
				if !ok {
					terms[last] = nil // a dropped alternative makes the term match
					continue
				}
				if terms[last] != nil {
					terms[last] = append(terms[last], c)
				}
			default:
				c, ok := parseCondition(part, fields)
				if !ok {
					terms = append(terms, nil) // dropped: matches every row
					continue
				}
				terms = append(terms, []condition{c})
			}
		}
		out = append(out, terms)
	}
	return out
}

func parseCondition(s string, fields []string) (condition, bool) {
	i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	})
	if i <= 0 {
		return condition{}, false
	}
	field, rest := s[:i], s[i:]
	if !slices.Contains(fields, field) {
		return condition{}, false
	}
	for _, op := range operators {
		if v, ok := strings.CutPrefix(rest, op); ok {
			return condition{field: field, op: op, value: v}, true
		}
	}
	return condition{}, false
}

func (q encodedQuery) match(row map[string]string) bool {
	if len(q) == 0 {
		return true
	}
	for _, terms := range q {
		if matchTerms(terms, row) {
			return true
		}
	}
	return false
}

func matchTerms(terms [][]condition, row map[string]string) bool {
	for _, alts := range terms {
		if alts == nil {
			continue
		}
		if !slices.ContainsFunc(alts, func(c condition) bool { return c.match(row[c.field]) }) {
			return false
		}
	}
	return true
}

// match compares as the database does: case-insensitively.
func (c condition) match(v string) bool {
	lv, lc := strings.ToLower(v), strings.ToLower(c.value)
	switch c.op {
	case "=":
		return lv == lc
	case "!=":
		return lv != lc
	case "LIKE":
		return strings.Contains(lv, lc)
	case "NOTLIKE":
		return !strings.Contains(lv, lc)
	case "STARTSWITH":
		return strings.HasPrefix(lv, lc)
	case "ENDSWITH":
		return strings.HasSuffix(lv, lc)
	case "ISEMPTY":
		return v == ""
	case "ISNOTEMPTY":
		return v != ""
	case "IN", "NOT IN":
		in := slices.ContainsFunc(strings.Split(lc, ","), func(x string) bool { return x == lv })
		return in == (c.op == "IN")
	}
	return true
}
