package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ionix/ionixsnow/consumer"
)

// TenantSource is one served tenant's figures (SPEC §9).
type TenantSource struct {
	Tenant string
	Source Source
	Budget BudgetReader // nil: no budget gauge for it
	// Backlog is the messages its durable consumer has not delivered yet.
	Backlog func() uint64
}

// Tenants lists the tenants a process serves now. Its order need not be stable.
type Tenants interface {
	Tenants() []TenantSource
}

// With tenants, every per-tenant series carries the label tenant (the single-tenant
// form as "default"), and ionixsnow_backlog{tenant} is added.
var (
	tReceivedDesc = desc("items_received_total", receivedHelp, "tenant")
	tSentDesc     = desc("items_sent_total", sentHelp, "tenant", "status")
	tFilteredDesc = desc("items_filtered_total", filteredHelp, "tenant", "reason")
	tSkippedDesc  = desc("items_skipped_total", skippedHelp, "tenant", "reason")
	tDeadDesc     = desc("dead_letters_total", deadHelp, "tenant", "reason")
	tFailedDesc   = desc("items_failed_total", failedHelp, "tenant")
	tRequeuedDesc = desc("items_requeued_total", requeuedHelp, "tenant")
	tBudgetDesc   = desc("budget_remaining", budgetHelp, "tenant")
	tPausedDesc   = desc("consumer_paused", pausedHelp, "tenant")
	tOutageDesc   = desc("consumer_outage", outageHelp, "tenant")
	tBacklogDesc  = desc("backlog", "Messages of the tenant's stream subjects its durable consumer has not delivered yet (as of its last delivery).", "tenant")
)

// WatchTenants registers the figures of every tenant t lists, each series labelled
// with its tenant. It replaces Watch for a process that serves tenants: the two
// cannot share a registry (the same names with other labels).
func (m *Metrics) WatchTenants(t Tenants) {
	m.reg.MustRegister(&tenantsCollector{tenants: t})
}

type tenantsCollector struct{ tenants Tenants }

func (c *tenantsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tReceivedDesc, tSentDesc, tFilteredDesc, tSkippedDesc, tDeadDesc, tFailedDesc,
		tRequeuedDesc, tBudgetDesc, tPausedDesc, tOutageDesc, tBacklogDesc} {
		ch <- d
	}
}

func (c *tenantsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.tenants.Tenants() {
		s, id := t.Source.Stats(), t.Tenant
		counter := func(d *prometheus.Desc, v int64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{id}, labels...)...)
		}
		counter(tReceivedDesc, s.Received)
		counter(tSentDesc, s.Created, "inserted")
		counter(tSentDesc, s.Updated, "updated")
		counter(tSentDesc, s.Unchanged, "unchanged")
		counter(tSentDesc, s.Resolved, "resolved")
		counter(tSentDesc, s.Reopened, "reopened")
		counter(tFilteredDesc, s.FilteredCategory, "category")
		counter(tFilteredDesc, s.FilteredUrgency, "urgency")
		counter(tFilteredDesc, s.FilteredClosed, "closed")
		counter(tSkippedDesc, s.Duplicates, "duplicate")
		counter(tSkippedDesc, s.Superseded, "superseded")
		counter(tSkippedDesc, s.Present, "present")
		counter(tSkippedDesc, s.OtherTenant, "other_tenant")
		counter(tDeadDesc, s.DeadInvalid, string(consumer.DeadInvalid))
		counter(tDeadDesc, s.DeadRejected, string(consumer.DeadRejected))
		counter(tDeadDesc, s.DeadMaxDeliver, string(consumer.DeadMaxDeliver))
		counter(tFailedDesc, s.Failed)
		counter(tRequeuedDesc, s.Requeued)
		p := t.Source.Paused()
		ch <- prometheus.MustNewConstMetric(tPausedDesc, prometheus.GaugeValue, flag(p.Paused && p.Configuration), id)
		ch <- prometheus.MustNewConstMetric(tOutageDesc, prometheus.GaugeValue, flag(p.Paused && !p.Configuration), id)
		if t.Backlog != nil {
			ch <- prometheus.MustNewConstMetric(tBacklogDesc, prometheus.GaugeValue, float64(t.Backlog()), id)
		}
		if t.Budget == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), budgetReadTimeout)
		st, err := t.Budget.State(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(tBudgetDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(tBudgetDesc, prometheus.GaugeValue, float64(st.Remaining()), id)
	}
}
