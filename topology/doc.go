// Package topology defines, in one place, every JetStream object ionixsnow uses —
// the action-item stream, the durable pull consumer, the dead-letter stream and the
// key-value buckets — and creates them idempotently. Every command that needs one of
// them calls Ensure (or one of the narrower Ensure functions) first, so no operator
// step is needed before the first run and a second run changes nothing.
package topology
