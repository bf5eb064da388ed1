// Package consumer is the main job of ionixsnow: a durable JetStream pull consumer
// that pulls action-item events only as fast as the send budget (package budget)
// grants, a reserve ahead of its workers (pull.go), filters and maps each one, posts
// it to ServiceNow, records the ticket in the ledger (package ledger) and only then
// acknowledges the message (a plain ack; a lost one is recognised by the ledger on
// redelivery; confirmed by the server while the consumer stops).
//
// What happens to a message is decided in one place, by a pure function of the event,
// the item's state in the ledger and the consumer's mode (decide.go; handle.go carries
// it out; docs/design.md shows the table):
//
//   - undecodable or invalid item, or an item ServiceNow rejects: dead-lettered to
//     the dead-letter stream (package dlq) with the reason, then terminated on the
//     main stream;
//   - filtered by urgency (or category), or a closing event that is not acted on:
//     acknowledged and counted, costing no budget;
//   - a redelivery whose id and fingerprint are already in the ledger: acknowledged
//     without a second post;
//   - a transient or configuration failure at ServiceNow: negatively acknowledged
//     with a growing delay, never lost and never dead-lettered; three transient
//     failures in a row or one configuration failure pause all sending (breaker.go),
//     one probe per backoff interval;
//   - a post answered with a second incident for an item the ledger already holds
//     one for (coalesce.go): checked (Table API read, else the item posted once
//     more), and if the transform map does not coalesce on correlation_id, all
//     sending halts until a restart.
//
// Messages returned while the consumer stops get a nak the server confirms, so a
// process (or its embedded server) ending right after cannot lose it.
package consumer
