// Package bench measures the whole pipeline (`ionixsnow bench`): a JetStream
// server, the ServiceNow emulator on a loopback HTTP listener with a configurable
// response latency, and the real publish and consume paths between them —
// publisher, stream, consumer, global budget, HTTP client, emulator, ticket ledger
// writes and double acks.
//
// By default it runs what deploys: the consumer spends the KV budget, as `consume`
// does, with the cap raised (BudgetCap per BudgetWindow) so that it never binds
// but every grant still goes through the budget bucket; Options.CapOff runs
// without a budget, to compare. The server is an embedded one over a temporary
// store, in this process, unless Options.NATSURL names an external nats-server:
// then the run's streams, consumer and buckets there get names of their own
// (IONIXSNOW_BENCH_<token>, ionixsnow_bench_*_<token>) and are deleted at the
// end, and the CPU time and peak memory measured are the pipeline's alone.
//
// Two modes:
//
//   - backlog (Rate 0): every item is published as fast as the publisher goes
//     (PublishAll, asynchronous), then the consumer starts and drains the stream;
//   - rate (Rate R): the consumer runs first and the items are published one at a
//     time (Publish) at R items per second, the way a steady producer would.
//
// What is measured, per item: the time from the moment JetStream stored the
// message (the timestamp in its metadata: the same clock as ours, but for an
// external server on another machine, whose clock skew it then includes) to the moment
// the consumer's double ack of it was confirmed by the server — the incident
// exists, the ledger holds its ticket and the message is settled. Throughput is
// items divided by the time from the first publish to the last such ack. The peak
// resident set size is the process's (VmHWM on Linux, reset at the start of each
// run), so it includes the emulator and an embedded NATS server.
//
// [Broker] measures the broker alone on the same kind of server: the same stream
// and durable consumer, the same messages, pulled with Fetch and acknowledged one
// by one with nothing else to do — the ceiling the pipeline is compared with.
package bench
