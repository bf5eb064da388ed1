// Package publisher puts IONIX action items on the stream: it reads them from a file
// or stdin (NDJSON, a JSON array, or an IONIX API page), validates each one, and
// publishes the valid ones with a de-duplication id (Nats-Msg-Id) so the same item
// published twice is stored once and a changed item is stored again.
package publisher
