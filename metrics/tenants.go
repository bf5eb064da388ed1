package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
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
	labelled    = newDescs("tenant")
	backlogDesc = desc("backlog", "Messages of the tenant's stream subjects its durable consumer has not delivered yet (as of its last delivery).", "tenant")
)

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
		if t.Backlog != nil {
			ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(t.Backlog()), t.Tenant)
		}
	}
}
