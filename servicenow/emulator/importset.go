package emulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// stagingColumns are the staging table's columns, without prefix: those of
// the integration guide plus correlation_id (the coalesce key) and the
// closing fields.
var stagingColumns = []string{"name", "body", "category", "impact", "urgency", "opening_date", "correlation_id", "state", "close_notes"}

// Max lengths of the incident fields the transform writes, as on a
// default instance.
const (
	shortDescriptionMax = 160
	descriptionMax      = 4000
	categoryMax         = 40
	correlationIDMax    = 100
	closeNotesMax       = 4000
	choiceMax           = 40
)

// DateTimeLayout is ServiceNow's default date-time format (UTC in the API).
const DateTimeLayout = "2006-01-02 15:04:05"

// maxImportBody bounds the body of an import request.
const maxImportBody = 10 << 20

// importResult is one entry of "result" in an Import Set API response.
type importResult struct {
	TransformMap  string `json:"transform_map"`
	Table         string `json:"table"`
	DisplayName   string `json:"display_name"`
	DisplayValue  string `json:"display_value"`
	RecordLink    string `json:"record_link"`
	Status        string `json:"status"`
	SysID         string `json:"sys_id"`
	StatusMessage string `json:"status_message,omitempty"`
	ErrorMessage  string `json:"error_message,omitempty"`
}

// importResponse is the body of an Import Set API response.
type importResponse struct {
	ImportSet    string         `json:"import_set"`
	StagingTable string         `json:"staging_table"`
	Result       []importResult `json:"result"`
}

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	rec := record(r)
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, http.MethodPost)
		return
	}
	if status := s.injectedError(); status != 0 {
		rec.addFault(fmt.Sprintf("injected error %d", status))
		writeError(w, status, http.StatusText(status), "Emulated failure; nothing was written")
		return
	}
	table := r.PathValue("table")
	if table != s.opt.ImportTable {
		rec.Note = "unknown import table " + table
		writeError(w, http.StatusNotFound, "Invalid table "+table, "")
		return
	}
	if why, msg, detail := s.rights().importDenied(); why != "" {
		rec.Note = why
		writeError(w, http.StatusForbidden, msg, detail)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			rec.Note = "content type " + ct
			writeError(w, http.StatusUnsupportedMediaType, "Unsupported Media Type",
				"Request content type "+ct+" is not supported; use application/json")
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxImportBody))
	if err != nil {
		rec.Note = "unreadable body"
		writeError(w, http.StatusBadRequest, "Exception while reading request", err.Error())
		return
	}
	fields, err := decodeRecord(body)
	if err != nil {
		rec.Note = err.Error()
		writeError(w, http.StatusBadRequest, "Exception while reading request", err.Error())
		return
	}
	rec.Fields = fields

	now := s.now()
	s.mu.Lock()
	row := s.stagingRow(fields)
	res := s.transform(row, now)
	iset := s.importSet(now)
	s.mu.Unlock()

	if res.SysID != "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		res.RecordLink = scheme + "://" + r.Host + "/api/now/table/incident/" + res.SysID
	}
	rec.ImportStatus = res.Status
	rec.Number = res.DisplayValue
	if res.ErrorMessage != "" {
		rec.Note = res.ErrorMessage
	}
	if s.dropResponse() {
		rec.addFault("response dropped after commit")
		abort(w, rec, false)
		return
	}
	writeJSON(w, http.StatusCreated, importResponse{
		ImportSet:    iset,
		StagingTable: s.opt.ImportTable,
		Result:       []importResult{res},
	})
}

// decodeRecord decodes one JSON object and turns every value into a string,
// as the Import Set API does with values that are not strings: numbers and
// booleans become their JSON text, null becomes empty, objects and arrays
// become their compact JSON text.
func decodeRecord(body []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the payload is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the payload is not valid JSON: data after the object")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the payload is not a JSON object")
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			out[k] = v
		case nil:
			out[k] = ""
		case json.Number:
			out[k] = v.String()
		case bool:
			out[k] = fmt.Sprint(v)
		default:
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
	}
	return out, nil
}

// handleImportRecord serves GET /api/now/import/{table}/{sys_id}, which
// reads a staging row and its transform result. The emulator keeps no
// staging rows: a known table answers 404 No Record found, as a real
// instance does for a row that does not exist (or that a read ACL hides).
// The client's probe relies on that answer.
func (s *Server) handleImportRecord(w http.ResponseWriter, r *http.Request) {
	rec := record(r)
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, http.MethodGet)
		return
	}
	table := r.PathValue("table")
	if table != s.opt.ImportTable {
		rec.Note = "unknown import table " + table
		writeError(w, http.StatusNotFound, "Invalid table "+table, "")
		return
	}
	if !s.rights().has(RoleImportTransformer) {
		rec.Note = "role import_transformer missing"
		writeError(w, http.StatusForbidden, "User Not Authorized", "Failed API level ACL Validation")
		return
	}
	writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
}

// maxLength is the max length of a staging column (without prefix); s.mu
// must be held.
func (s *Server) maxLength(col string) int {
	if n, ok := s.cfg.FieldMaxLength[col]; ok && n > 0 {
		return n
	}
	if s.cfg.StagingAsCreated {
		return CreatedMaxLength
	}
	switch col {
	case "name", "body":
		return s.cfg.NameBodyMaxLength
	case "correlation_id":
		return correlationIDMax
	case "close_notes":
		return closeNotesMax
	}
	return CreatedMaxLength
}

// stagingRow keeps the fields that are staging columns and truncates them
// to the column lengths, silently, as ServiceNow does; s.mu must be held.
func (s *Server) stagingRow(fields map[string]string) map[string]string {
	row := map[string]string{}
	for _, c := range stagingColumns {
		if v, ok := fields[s.opt.FieldPrefix+c]; ok {
			row[s.opt.FieldPrefix+c] = truncate(v, s.maxLength(c))
		}
	}
	return row
}

// truncate cuts s to at most n characters (runes).
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// priority is ServiceNow's default priority lookup (impact × urgency); a
// combination outside the table leaves the default, 5 (Planning).
func priority(impact, urgency string) string {
	switch impact + "/" + urgency {
	case "1/1":
		return "1"
	case "1/2", "2/1":
		return "2"
	case "1/3", "2/2", "3/1":
		return "3"
	case "2/3", "3/2":
		return "4"
	}
	return "5"
}

func newSysID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// importSet returns the import set of the day: web service import sets stay
// open (loading) and collect the day's rows. s.mu must be held.
func (s *Server) importSet(now time.Time) string {
	day := now.UTC().Format("2006-01-02")
	n, ok := s.importSets[day]
	if !ok {
		n = s.nextImportSet
		s.nextImportSet++
		s.importSets[day] = n
	}
	return fmt.Sprintf("ISET%07d", n)
}

// transform runs the transform map on one staging row: coalesce on
// correlation_id (unless the switches NoCoalesce or UnmappedCorrelationID
// emulate a transform map set up without it), then insert or update the
// incident. s.mu must be held.
func (s *Server) transform(row map[string]string, now time.Time) importResult {
	res := importResult{
		TransformMap: strings.TrimPrefix(s.opt.ImportTable, s.opt.FieldPrefix),
		Table:        "incident",
		DisplayName:  "number",
	}
	if s.opt.OnBefore != nil {
		if status, msg := s.opt.OnBefore(row); status != "" {
			res.Status = status
			if status == "error" {
				res.ErrorMessage = msg
			} else {
				res.StatusMessage = msg
			}
			return res
		}
	}

	col := func(c string) string { return row[s.opt.FieldPrefix+c] }
	// Field maps, in the order of the guide. Empty source values are not
	// copied (the transform map's "Copy empty fields" is off by default).
	target := map[string]string{
		"short_description": truncate(col("name"), shortDescriptionMax),
		"description":       truncate(col("body"), descriptionMax),
		"category":          truncate(col("category"), categoryMax),
		"impact":            truncate(col("impact"), choiceMax),
		"urgency":           truncate(col("urgency"), choiceMax),
		"correlation_id":    truncate(col("correlation_id"), correlationIDMax),
		"state":             truncate(col("state"), choiceMax),
		"close_notes":       truncate(col("close_notes"), closeNotesMax),
	}
	if v := col("opening_date"); v != "" {
		// A value that does not parse leaves opened_at alone, as the
		// transform does ("Unable to format ... using format string").
		if t, err := time.Parse(DateTimeLayout, v); err == nil {
			target["opened_at"] = t.Format(DateTimeLayout)
		}
	}

	if s.cfg.UnmappedCorrelationID {
		delete(target, "correlation_id")
	}
	var inc *Incident
	if cid := target["correlation_id"]; cid != "" && !s.cfg.NoCoalesce {
		// Coalesce looks the value up in the database, whose string
		// comparisons ignore case.
		inc = s.byCorrelation[strings.ToLower(cid)]
	}

	if inc == nil {
		inc = &Incident{
			SysID:     newSysID(),
			Number:    fmt.Sprintf("INC%07d", s.nextIncident),
			Impact:    "3",
			Urgency:   "3",
			State:     "1",
			OpenedAt:  now.UTC().Format(DateTimeLayout),
			Inserts:   1,
			CreatedAt: now,
			UpdatedAt: now,
		}
		s.nextIncident++
		applyFields(inc, target)
		inc.Priority = priority(inc.Impact, inc.Urgency)
		s.incidents = append(s.incidents, inc)
		if inc.CorrelationID != "" {
			if s.byCorrelation == nil {
				s.byCorrelation = make(map[string]*Incident)
			}
			s.byCorrelation[strings.ToLower(inc.CorrelationID)] = inc
		}
		res.Status = "inserted"
	} else {
		before := *inc
		applyFields(inc, target)
		inc.Priority = priority(inc.Impact, inc.Urgency)
		if s.cfg.IgnoreUnchanged && *inc == before {
			res.Status = "ignored"
			res.StatusMessage = "No field values changed"
		} else {
			inc.Updates++
			inc.UpdatedAt = now
			res.Status = "updated"
		}
	}
	res.SysID = inc.SysID
	res.DisplayValue = inc.Number
	return res
}

// applyFields copies the non-empty target values onto inc.
func applyFields(inc *Incident, target map[string]string) {
	set := func(dst *string, k string) {
		if v := target[k]; v != "" {
			*dst = v
		}
	}
	set(&inc.ShortDescription, "short_description")
	set(&inc.Description, "description")
	set(&inc.Category, "category")
	set(&inc.Impact, "impact")
	set(&inc.Urgency, "urgency")
	set(&inc.OpenedAt, "opened_at")
	set(&inc.CorrelationID, "correlation_id")
	set(&inc.State, "state")
	set(&inc.CloseNotes, "close_notes")
}
