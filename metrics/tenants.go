package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// TenantSource is one served tenant's figures (SPEC §9).
type TenantSource struct {
	Tenant string
	Source Source
	Budget BudgetReader // nil: no budget gauge for it
	// Source's backlog, when it is a BacklogSource, is ionixsnow_backlog{tenant,urgency}.
}

// Tenants lists the tenants a process serves now. Its order need not be stable.
type Tenants interface {
	Tenants() []TenantSource
}

// With tenants, every per-tenant series carries the label tenant (the single-tenant
// form as "default"), and ionixsnow_backlog{tenant,urgency} is added.
var (
	labelled    = newDescs("tenant")
	backlogDesc = desc("backlog", backlogHelp, "tenant", "urgency")
)

const backlogHelp = "Messages not sent yet: by ServiceNow urgency band (high, medium, low) while the cap holds a backlog back " +
	"and the express lane sorts it (SPEC §10); otherwise, urgency=\"unsorted\", those the durable consumer has not delivered yet (as of its last delivery)."

// backlogSeries sends the backlog gauges of one source: by band when sorted, else
// the total as "unsorted".
func backlogSeries(ch chan<- prometheus.Metric, d *prometheus.Desc, b BacklogSource, labels ...string) {
	if counts, sorted := b.BacklogByUrgency(); sorted {
		for i, band := range []string{"high", "medium", "low"} {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(counts[i]), append(labels, band)...)
		}
		return
	}
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(b.Backlog()), append(labels, "unsorted")...)
}

// WatchTenants registers the figures of every tenant t lists, each series labelled
// with its tenant. It replaces Watch for a process that serves tenants: the two
// cannot share a registry (the same names with other labels).
func (m *Metrics) WatchTenants(t Tenants) {
	m.reg.MustRegister(&tenantsCollector{tenants: t})
}

type tenantsCollector struct{ tenants Tenants }

func (c *tenantsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range labelled.all() {
		ch <- d
	}
	ch <- backlogDesc
}

func (c *tenantsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.tenants.Tenants() {
		s := t.Source.Stats()
		labelled.collect(ch, s, t.Source.Paused(), t.Budget, t.Tenant)
		// Only a process with tenants sees another tenant's items.
		ch <- prometheus.MustNewConstMetric(labelled.skipped, prometheus.CounterValue, float64(s.OtherTenant), t.Tenant, "other_tenant")
		if b, ok := t.Source.(BacklogSource); ok {
			backlogSeries(ch, backlogDesc, b, t.Tenant)
		}
	}
}
