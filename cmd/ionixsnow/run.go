package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/ionix/ionixsnow/config"
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
	// environ is the whole environment, NAME=value (os.Environ()): the
	// configuration is loaded from it, so that unknown IONIXSNOW_* variables
	// are refused.
	environ []string
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
		{"tenant", "every customer's integration: put, get, list, activate, deactivate, delete", runTenant},
		{"keys", "the keyset that seals tenant secrets: init, rotate", runKeys},
		{"bench", "the real pipeline end to end in one process: throughput, latency p50/p99, peak memory", runBench},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, lookupEnv: osLookupEnv, environ: os.Environ()}
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

// loadConfig loads and validates the configuration (file, environment, secret
// files); on failure it prints every problem to stderr and returns exitUsage.
// The warnings of loading (a secret file others may read) are logged once.
func (e *env) loadConfig(path string, needs config.Needs) (config.Config, int, bool) {
	return e.loadConfigAs(path, needs, false)
}

// loadConfigAs is loadConfig for a command that can answer in JSON: with
// asJSON the problems go to stdout as one jsonFailure.
func (e *env) loadConfigAs(path string, needs config.Needs, asJSON bool) (config.Config, int, bool) {
	cfg, warnings, err := config.LoadEnviron(path, e.environ, needs)
	if err != nil {
		if asJSON {
			f := jsonFailure{Error: "the configuration has problems", Fix: "correct each key named in problems"}
			for _, p := range config.AsProblems(err) {
				f.Problems = append(f.Problems, jsonProblem(p))
			}
			e.printJSONFailure(f)
		} else {
			fmt.Fprintf(e.stderr, "ionixsnow: configuration problems:\n%s\n", indent(err.Error()))
		}
		return cfg, exitUsage, false
	}
	log := newLogger(cfg.Log, e.stderr)
	for _, w := range warnings {
		log.Warn().Str("key", w.Key).Msg(w.Message)
	}
	return cfg, 0, true
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// jsonFailure is what a command run with --json prints on stdout when it
// fails: what went wrong, what fixes it, and for a configuration that does not
// load every problem with its key.
type jsonFailure struct {
	Error    string        `json:"error"`
	Fix      string        `json:"fix,omitempty"`
	Problems []jsonProblem `json:"problems,omitempty"`
}

type jsonProblem struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

// printJSONFailure writes f to stdout, indented as the commands' other JSON.
func (e *env) printJSONFailure(f jsonFailure) { _ = e.printJSON(f) }

// printJSON prints v indented on stdout.
func (e *env) printJSON(v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow: %v\n", err)
		return exitFailed
	}
	return exitOK
}
