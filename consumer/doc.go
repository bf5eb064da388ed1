// Package consumer is the main job of ionixsnow: a durable JetStream pull consumer
// that fetches action-item events only as fast as the send budget grants, filters and
// maps each one, posts it to ServiceNow, records the ticket in the ledger and only
// then acknowledges the message (double-ack, confirmed by the server).
//
// What happens to a message is decided in one place (handle.go):
//
//   - undecodable or invalid item, or an item ServiceNow rejects: dead-lettered to
//     the dead-letter stream with the reason, then terminated on the main stream;
//   - filtered by urgency (or category), or a closing event that is not acted on:
//     acknowledged and counted, costing no budget;
//   - a redelivery whose id and fingerprint are already in the ledger: acknowledged
//     without a second post;
//   - a transient or configuration failure at ServiceNow: negatively acknowledged
//     with a growing delay, never lost and never dead-lettered.
package consumer
