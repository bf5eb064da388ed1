package servicenow

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// probeSysID is the staging row the probe asks for: a well-formed sys_id
// no row has.
const probeSysID = "00000000000000000000000000000000"

// Probe tells whether sending would work now, without creating anything:
// it obtains a token if none is held (so it proves the OAuth client and the
// credentials), then reads one staging row that does not exist through the
// Import Set API, GET {instance}/api/now/import/{ImportTable}/{zero sys_id}.
//
// That request passes through everything an import passes through before
// the staging row is written: the instance being up and awake, the rate
// limit, the token, the Import Set API's REST endpoint ACL (which wants the
// role import_transformer) and the staging table's existence. ServiceNow
// answers 404 "No Record found" for a table it knows (whether the row is
// missing or a read ACL hides it: the user needs no read access), which is
// success; 404 "Invalid table" and 403 are configuration problems with
// their fix, 429, 5xx, HTML pages and network errors transient. It cannot
// prove the staging table's create and write ACLs (only an insert can);
// the first import after a successful probe does, and a 403 there is a
// configuration error again. The probe is not an import: it does not count
// against the import budget.
//
// The error is an [*Error] classified as for [Client.Import] (a 4xx that
// would be permanent for an item is a configuration problem here).
func (c *Client) Probe(ctx context.Context) error {
	resp, err := c.do(ctx, OpProbe, http.MethodGet,
		"/api/now/import/"+url.PathEscape(c.cfg.ImportTable)+"/"+probeSysID, nil, nil)
	if err != nil {
		return err
	}
	class := Classify(resp.status, resp.contentType, "")
	switch {
	case class == ClassSuccess:
		return nil
	case resp.status == http.StatusNotFound && noRecord(resp):
		return nil
	case class == ClassPermanent:
		class = ClassConfiguration
	}
	return c.responseError(OpProbe, resp, class)
}

// noRecord reports whether a 404 says that the record does not exist (as
// opposed to the table).
func noRecord(resp *response) bool {
	var eb errorBody
	if json.Unmarshal(resp.body, &eb) != nil {
		return false
	}
	return strings.Contains(strings.ToLower(eb.Error.Message), "no record")
}
