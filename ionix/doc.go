// Package ionix holds the IONIX action item: the finding that ionixsnow turns
// into a ServiceNow incident.
//
// It decodes an action item exactly as the IONIX API returns it
// (GET /api/v1/remediation/action-items/open/), validates it, encodes it back
// without losing fields it does not know, and derives the names the rest of
// the pipeline relies on: the NATS subject an event is published on
// (Subject, CategoryToken), the de-duplication id carried in the Nats-Msg-Id
// header (MsgID, Fingerprint) and a token form of an id that is safe in a
// subject or a KV key (KeyToken).
//
// Decoding rules (SPEC §2):
//
//   - "title" is either {"label": "..."} or a plain string;
//   - "urgency" is either {"urgency": 9.3} or a plain JSON number, 0 to 10.
//     A missing, null, non-numeric (a string such as "9.3" included) or
//     out-of-range urgency rejects the item;
//   - "id", "title" and "type" are required and must not be blank;
//   - "tags" and "cves" are read leniently: strings as they are, objects by
//     their name-like field, anything else as its compact JSON text;
//   - every other field, and a known optional field whose value has an
//     unexpected shape, is kept as received (compacted) in ActionItem.Extra,
//     so encoding the item again loses nothing;
//   - a JSON number as "id" is accepted and kept as its literal text.
//
// Every rejection is an error that wraps ErrInvalid and names each problem in
// plain words. The package uses only the standard library and holds no state.
package ionix
