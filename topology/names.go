package topology

import (
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
	return n
}

// StreamSubjects is the subject filter of the action-item stream.
func (n Names) StreamSubjects() string { return n.WithDefaults().SubjectPrefix + ".>" }

// DLQSubject is the subject a dead letter of the given category token is stored under.
func (n Names) DLQSubject(categoryToken string) string {
	return n.WithDefaults().DLQSubjectPrefix + "." + categoryToken
}
