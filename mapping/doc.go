// Package mapping turns an IONIX action item into a ServiceNow Import Set
// record and decides which items are sent (SPEC §4).
//
// Everything here is a pure function of its arguments: no I/O, no clock, no
// state. The record fields, before the configured prefix (default "u_"), are
//
//	name            <- title                          (incident short_description)
//	body            <- readable text, <= 4,000 runes  (incident description)
//	category        <- type, or its override           (incident category)
//	impact          <- Vulnerability 1; PKI, DNS, Cloud and others 2; overridable
//	urgency         <- IONIX urgency >= 9.0 -> 1, >= 7.0 -> 2, else 3
//	opening_date    <- first_opened_at in UTC, "YYYY-MM-DD HH:MM:SS"
//	correlation_id  <- "ionix:<id>", <= 100 bytes      (the coalesce key)
//
// and a closing record adds state, close_code and close_notes. All values are
// strings: the Import Set API accepts strings only.
//
// Filter applies the configured categories and urgency threshold; its
// FilterSubjects gives the JetStream consumer's subject filter for the same
// categories.
package mapping
