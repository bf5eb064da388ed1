// Package bench measures the whole pipeline in one process (`ionixsnow bench`):
// an embedded JetStream server over a temporary store, the ServiceNow emulator on a
// loopback HTTP listener with a configurable response latency, and the real publish
// and consume paths between them — publisher, stream, consumer (cap off), HTTP
// client, emulator, ticket ledger writes and double acks.
//
// Two modes:
//
//   - backlog (Rate 0): every item is published as fast as the publisher goes
//     (PublishAll, asynchronous), then the consumer starts and drains the stream;
//   - rate (Rate R): the consumer runs first and the items are published one at a
//     time (Publish) at R items per second, the way a steady producer would.
//
// What is measured, per item: the time from the moment JetStream stored the
// message (the timestamp in its metadata, the same clock as ours) to the moment
// the consumer's double ack of it was confirmed by the server — the incident
// exists, the ledger holds its ticket and the message is settled. Throughput is
// items divided by the time from the first publish to the last such ack. The peak
// resident set size is the process's (VmHWM on Linux, reset at the start of each
// run), so it includes the NATS server and the emulator.
//
// [Broker] measures the broker alone on the same embedded server: the same stream
// and durable consumer, the same messages, pulled with Fetch and acknowledged one
// by one with nothing else to do — the ceiling the pipeline is compared with.
package bench
