package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/metrics"
	"github.com/ionix/ionixsnow/servicenow"
)

type fakeSource struct {
	s consumer.Snapshot
	p consumer.PauseState
}

func (f fakeSource) Stats() consumer.Snapshot    { return f.s }
func (f fakeSource) Paused() consumer.PauseState { return f.p }

type fakeBudget struct {
	st  budget.State
	err error
}

func (f fakeBudget) State(context.Context) (budget.State, error) { return f.st, f.err }

type fakeImporter struct {
	res servicenow.Result
	err error
}

func (f fakeImporter) Import(context.Context, map[string]string) (servicenow.Result, error) {
	return f.res, f.err
}

// TestMetricsExposeTheConsumer: every metric of SPEC §7 with the consumer's figures.
func TestMetricsExposeTheConsumer(t *testing.T) {
	m := metrics.New()
	src := fakeSource{s: consumer.Snapshot{
		Received: 20, Created: 9, Updated: 2, Unchanged: 1, Resolved: 1, Reopened: 1,
		FilteredCategory: 3, FilteredUrgency: 2, FilteredClosed: 1, Duplicates: 1,
		DeadLettered: 2, DeadInvalid: 1, DeadRejected: 1, Failed: 4,
	}, p: consumer.PauseState{Paused: true, Configuration: true}}
	m.Watch(src, fakeBudget{st: budget.State{Used: 13, Limit: 1000}})
	want := `
# HELP ionixsnow_items_received_total Action-item messages received from the stream (redeliveries included).
# TYPE ionixsnow_items_received_total counter
ionixsnow_items_received_total 20
# HELP ionixsnow_items_sent_total Items ServiceNow accepted (inserted, updated, unchanged, resolved or reopened).
# TYPE ionixsnow_items_sent_total counter
ionixsnow_items_sent_total{status="inserted"} 9
ionixsnow_items_sent_total{status="reopened"} 1
ionixsnow_items_sent_total{status="resolved"} 1
ionixsnow_items_sent_total{status="unchanged"} 1
ionixsnow_items_sent_total{status="updated"} 2
# HELP ionixsnow_items_filtered_total Items acknowledged without a post because a filter left them out.
# TYPE ionixsnow_items_filtered_total counter
ionixsnow_items_filtered_total{reason="category"} 3
ionixsnow_items_filtered_total{reason="closed"} 1
ionixsnow_items_filtered_total{reason="urgency"} 2
# HELP ionixsnow_dead_letters_total Items moved to the dead-letter stream.
# TYPE ionixsnow_dead_letters_total counter
ionixsnow_dead_letters_total{reason="invalid"} 1
ionixsnow_dead_letters_total{reason="max_deliver"} 0
ionixsnow_dead_letters_total{reason="rejected"} 1
# HELP ionixsnow_budget_remaining Sends the global budget would grant now.
# TYPE ionixsnow_budget_remaining gauge
ionixsnow_budget_remaining 987
# HELP ionixsnow_consumer_paused 1 while a ServiceNow configuration error pauses sending.
# TYPE ionixsnow_consumer_paused gauge
ionixsnow_consumer_paused 1
`
	names := []string{"ionixsnow_items_received_total", "ionixsnow_items_sent_total", "ionixsnow_items_filtered_total",
		"ionixsnow_dead_letters_total", "ionixsnow_budget_remaining", "ionixsnow_consumer_paused"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// TestRequestDurationsByOutcome: the wrapped importer observes each request under
// the class ServiceNow's answer falls in; a re-post that changed nothing is a success.
func TestRequestDurationsByOutcome(t *testing.T) {
	m := metrics.New()
	for _, imp := range []fakeImporter{
		{res: servicenow.Result{Status: "inserted"}},
		{res: servicenow.Result{Status: "ignored", SysID: "abc", Number: "INC1"}, err: &servicenow.Error{Class: servicenow.ClassPermanent}},
		{err: &servicenow.Error{Class: servicenow.ClassTransient, StatusCode: 503}},
		{err: &servicenow.Error{Class: servicenow.ClassConfiguration, StatusCode: 403}},
		{err: &servicenow.Error{Class: servicenow.ClassPermanent, StatusCode: 400}},
	} {
		_, _ = m.Importer(imp).Import(context.Background(), nil)
	}
	for outcome, want := range map[string]int{"success": 2, "transient": 1, "configuration": 1, "permanent": 1} {
		if got := histogramCount(t, m, outcome); got != want {
			t.Errorf("outcome %s: %d observations, want %d", outcome, got, want)
		}
	}
}

func histogramCount(t *testing.T, m *metrics.Metrics, outcome string) int {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ionixsnow_servicenow_request_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return int(mt.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return -1
}

// TestBudgetUnreadable: a budget that cannot be read makes the scrape report an
// error, never a made-up figure.
func TestBudgetUnreadable(t *testing.T) {
	m := metrics.New()
	m.Watch(fakeSource{}, fakeBudget{err: errors.New("nats: timeout")})
	_, err := m.Registry().Gather()
	if err == nil || !strings.Contains(err.Error(), "nats: timeout") {
		t.Errorf("gather: %v, want the budget's error", err)
	}
}

type backlogSource struct {
	fakeSource
	total  uint64
	counts [3]int
	sorted bool
}

func (b backlogSource) Backlog() uint64                  { return b.total }
func (b backlogSource) BacklogByUrgency() ([3]int, bool) { return b.counts, b.sorted }

// TestBacklogByUrgency: ionixsnow_backlog{urgency} by band while the express lane
// sorts the backlog, the total as "unsorted" otherwise; with tenants, labelled too.
func TestBacklogByUrgency(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  backlogSource
		want string
	}{
		{"sorted", backlogSource{total: 9, counts: [3]int{1, 2, 30}, sorted: true},
			"ionixsnow_backlog{urgency=\"high\"} 1\nionixsnow_backlog{urgency=\"low\"} 30\nionixsnow_backlog{urgency=\"medium\"} 2\n"},
		{"unsorted", backlogSource{total: 9}, "ionixsnow_backlog{urgency=\"unsorted\"} 9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			m.Watch(tc.src, nil)
			want := "# HELP ionixsnow_backlog " + backlogHelpText(t, m) + "\n# TYPE ionixsnow_backlog gauge\n" + tc.want
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "ionixsnow_backlog"); err != nil {
				t.Error(err)
			}
			tm := metrics.New()
			tm.WatchTenants(tenantList{{Tenant: "acme", Source: tc.src}})
			got, err := testutil.GatherAndCount(tm.Registry(), "ionixsnow_backlog")
			if err != nil || got != strings.Count(tc.want, "\n") {
				t.Errorf("with tenants: %d series (%v), want %d", got, err, strings.Count(tc.want, "\n"))
			}
		})
	}
}

type tenantList []metrics.TenantSource

func (l tenantList) Tenants() []metrics.TenantSource { return l }

// backlogHelpText is the HELP of ionixsnow_backlog as registered.
func backlogHelpText(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ionixsnow_backlog" {
			return mf.GetHelp()
		}
	}
	t.Fatal("no ionixsnow_backlog")
	return ""
}
