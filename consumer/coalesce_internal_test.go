package consumer

import (
	"testing"

	"github.com/ionix/ionixsnow/ledger"
	"github.com/ionix/ionixsnow/servicenow"
)

func TestSecondIncident(t *testing.T) {
	t.Parallel()
	ticketed := ledger.Ticket{SysID: "a1", Number: "INC0010001"}
	closingOnly := ledger.Ticket{Status: ledger.StatusResolved} // a closing recorded before any incident
	for _, tc := range []struct {
		name   string
		prev   ledger.Ticket
		found  bool
		res    servicenow.Result
		replay bool
		want   bool
	}{
		{"first post", ledger.Ticket{}, false, servicenow.Result{Status: "inserted", SysID: "a1"}, false, false},
		{"update coalesced", ticketed, true, servicenow.Result{Status: "updated", SysID: "a1"}, false, false},
		{"unchanged re-post", ticketed, true, servicenow.Result{Status: "ignored", SysID: "a1", Number: "INC0010001"}, false, false},
		{"second incident", ticketed, true, servicenow.Result{Status: "inserted", SysID: "b2"}, false, true},
		{"inserted, same sys_id in other case", ticketed, true, servicenow.Result{Status: "inserted", SysID: "A1"}, false, false},
		{"second incident in a replay", ticketed, true, servicenow.Result{Status: "inserted", SysID: "b2"}, true, false},
		{"after a closing without incident", closingOnly, true, servicenow.Result{Status: "inserted", SysID: "b2"}, false, false},
		{"inserted without sys_id", ticketed, true, servicenow.Result{Status: "inserted"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := secondIncident(tc.prev, tc.found, tc.res, tc.replay); got != tc.want {
				t.Errorf("secondIncident = %v, want %v", got, tc.want)
			}
		})
	}
}
