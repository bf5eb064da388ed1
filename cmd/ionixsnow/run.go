package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // bad flags or bad configuration
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(env *env, args []string) int
}

// env is what every command reads and writes.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

func commands() []command {
	return []command{
		{"demo", "embedded NATS + ServiceNow emulator + sample items through the real pipeline", runDemo},
		{"consume", "the main job: pull action items and create ServiceNow incidents", runConsume},
		{"publish", "publish action items from a file or stdin (NDJSON, JSON array, IONIX API page)", runPublish},
		{"poll", "poll the IONIX API; publish new and changed items and closing events", runPoll},
		{"replay", "re-send a range of the stream through the same pipeline and budget", runReplay},
		{"dlq", "list, re-drive or purge dead letters", runDLQ},
		{"status", "stream, backlog, budget, dead letters and the time to drain", runStatus},
		{"doctor", "check NATS, the ServiceNow URL, OAuth, the import table, ACLs and field lengths", runDoctor},
		{"servicenow-sim", "run the ServiceNow emulator", runServiceNowSim},
		{"bench", "the real pipeline end to end in one process: throughput, latency p50/p99, peak memory", runBench},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, lookupEnv: osLookupEnv}
	return e.dispatch(args)
}

func (e *env) dispatch(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		e.usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "ionixsnow: unknown command %q\n\n", args[0])
	e.usage(e.stderr)
	return exitUsage
}

func (e *env) usage(w io.Writer) {
	fmt.Fprintln(w, "ionixsnow turns IONIX action items into ServiceNow incidents.")
	fmt.Fprintln(w, "\nUsage: ionixsnow <command> [--config FILE] [flags]")
	fmt.Fprintln(w, "\nCommands:")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery config key is also an environment variable IONIXSNOW_<SECTION>_<KEY>.")
	fmt.Fprintln(w, "Run 'ionixsnow <command> -h' for the flags of a command.")
}

// flagSet returns a flag set that reports errors to stderr and does not exit.
func (e *env) flagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: ionixsnow %s %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; it returns the exit code to use when parsing ended the command.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK, false
	}
	if err != nil {
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return exitUsage, false
	}
	return 0, true
}
