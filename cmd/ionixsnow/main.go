// Command ionixsnow turns IONIX action items into ServiceNow incidents through a NATS
// JetStream stream. Run `ionixsnow help` for the subcommands.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
