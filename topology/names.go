package topology

import (
	"strings"
	"time"
)

// Default names and settings of SPEC §3.
const (
	DefaultStream           = "IONIX_ACTION_ITEMS"
	DefaultSubjectPrefix    = "ionix.action_items"
	DefaultConsumer         = "servicenow"
	DefaultDLQStream        = "IONIX_DLQ"
	DefaultDLQSubjectPrefix = "ionix.dlq"
	DefaultBudgetBucket     = "ionix_budget"
	DefaultTicketsBucket    = "ionix_tickets"
	DefaultSeenBucket       = "ionix_seen"
	// DefaultIntegrationsBucket holds the tenants' settings (SPEC §9).
	DefaultIntegrationsBucket = "ionix_integrations"
	// DefaultTenantReportsBucket holds what each consume replica says of each
	// tenant's sending (paused, and why), for status --all.
	DefaultTenantReportsBucket = "ionix_tenant_reports"

	// StreamMaxAge is how long action-item events stay replayable.
	StreamMaxAge = 30 * 24 * time.Hour
	// DuplicateWindow is how long a Nats-Msg-Id is remembered for de-duplication.
	DuplicateWindow = 24 * time.Hour
	// AckWait is how long a delivered message may stay unacknowledged before the
	// server redelivers it.
	AckWait = 2 * time.Minute
)

// Names holds the name of every JetStream object. Zero fields take the defaults.
type Names struct {
	Stream           string
	SubjectPrefix    string
	Consumer         string
	DLQStream        string
	DLQSubjectPrefix string
	BudgetBucket     string
	TicketsBucket    string
	SeenBucket       string
	// IntegrationsBucket holds one key per tenant: its settings, secrets sealed.
	IntegrationsBucket string
	// TenantReportsBucket holds the replicas' reports of each tenant's sending.
	TenantReportsBucket string
	// Tenant is the tenant these names serve (SPEC §9): empty (or "default") for
	// the single-tenant form, whose names are those of SPEC §3. A tenant's items
	// and dead letters carry its id as the token after the prefixes; the streams
	// and buckets are shared.
	Tenant string
}

// DefaultTenant is the single-tenant form's id (tenant.Default).
const DefaultTenant = "default"

// ForTenant returns the names of tenant t: its action items under
// <SubjectPrefix>.<t>, its durable consumer <Consumer>_<t>, its dead letters under
// <DLQSubjectPrefix>.<t>. For "" or "default" they are n's own.
func (n Names) ForTenant(t string) Names {
	n = n.WithDefaults()
	if t == "" || t == DefaultTenant {
		n.Tenant = ""
		return n
	}
	n.Tenant = t
	n.Consumer = n.Consumer + "_" + t
	return n
}

// IsTenant reports whether the names are a tenant's (not the single-tenant form's).
func (n Names) IsTenant() bool { return n.Tenant != "" && n.Tenant != DefaultTenant }

// ItemSubjectPrefix is the prefix of the action-item subjects of the names' tenant:
// <SubjectPrefix>.<tenant>, or SubjectPrefix for the single-tenant form. Subjects
// are <ItemSubjectPrefix>.<event>.<category>.
func (n Names) ItemSubjectPrefix() string {
	n = n.WithDefaults()
	if n.IsTenant() {
		return n.SubjectPrefix + "." + n.Tenant
	}
	return n.SubjectPrefix
}

// DLQItemPrefix is the prefix of the dead-letter subjects of the names' tenant.
func (n Names) DLQItemPrefix() string {
	n = n.WithDefaults()
	if n.IsTenant() {
		return n.DLQSubjectPrefix + "." + n.Tenant
	}
	return n.DLQSubjectPrefix
}

// DLQSubjectOf reports whether a dead-letter subject is the names' tenant's: below
// its DLQItemPrefix with at most <event>.<category> after it (a tenant's have its id
// first; a letter of a message on no known subject is "unknown", one token).
func DLQSubjectOf(n Names, subject string) bool {
	rest, ok := strings.CutPrefix(subject, n.DLQItemPrefix()+".")
	return ok && rest != "" && strings.Count(rest, ".") < 2
}

// DLQFilter is the subject filter that reads the names' tenant's dead letters (with
// others' for the single-tenant form: keep those DLQSubjectOf accepts).
func (n Names) DLQFilter() string {
	if n.IsTenant() {
		return n.DLQItemPrefix() + ".>"
	}
	return n.WithDefaults().DLQSubjectPrefix + ".>"
}

// BudgetKey is the tenant's key in the budget bucket: "" (the budget's default key,
// "window") for the single-tenant form, the tenant id otherwise.
func (n Names) BudgetKey() string {
	if n.IsTenant() {
		return n.Tenant
	}
	return ""
}

// LedgerPrefix prefixes the tenant's keys in the ticket ledger: "<tenant>." ("" for
// the single-tenant form).
func (n Names) LedgerPrefix() string {
	if n.IsTenant() {
		return n.Tenant + "."
	}
	return ""
}

// DefaultNames returns the names of SPEC §3.
func DefaultNames() Names {
	return Names{}.WithDefaults()
}

// WithDefaults fills the empty names with the defaults.
func (n Names) WithDefaults() Names {
	set := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	set(&n.Stream, DefaultStream)
	set(&n.SubjectPrefix, DefaultSubjectPrefix)
	set(&n.Consumer, DefaultConsumer)
	set(&n.DLQStream, DefaultDLQStream)
	set(&n.DLQSubjectPrefix, DefaultDLQSubjectPrefix)
	set(&n.BudgetBucket, DefaultBudgetBucket)
	set(&n.TicketsBucket, DefaultTicketsBucket)
	set(&n.SeenBucket, DefaultSeenBucket)
	set(&n.IntegrationsBucket, DefaultIntegrationsBucket)
	set(&n.TenantReportsBucket, DefaultTenantReportsBucket)
	return n
}

// StreamSubjects is the subject filter of the action-item stream.
func (n Names) StreamSubjects() string { return n.WithDefaults().SubjectPrefix + ".>" }

// DLQSubject is the subject a dead letter of the given category token is stored under.
func (n Names) DLQSubject(categoryToken string) string {
	return n.DLQItemPrefix() + "." + categoryToken
}
