// Package status reads, without creating or changing anything, what an operator
// needs to see at a glance: the action-item stream, the durable consumer's backlog,
// the global send budget (used, limit, next free slot), the dead letters, and how
// long the backlog will take to send at the cap. `ionixsnow status` prints its
// Report as JSON or as a table.
//
// Collect only looks: a missing stream is an error (ErrNoStream), a missing
// consumer, dead-letter stream or budget bucket is reported as such (zero figures,
// and a line in Problems where the operator should know), never created.
//
// The drain ETA (eta.go) is a pure function of the backlog and the budget ledger,
// tested on its own.
package status
