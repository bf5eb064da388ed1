package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/tenant"
)

// The binary's own description of its commands and flags (`ionixsnow <command> -h`),
// and the argument lists of the deployment files checked against it.

type flagSpec struct {
	takesValue bool
}

type helpCache struct {
	mu    sync.Mutex
	flags map[string]map[string]flagSpec // "dlq list" -> flags
	errs  map[string]error
}

var deployHelp = &helpCache{flags: map[string]map[string]flagSpec{}, errs: map[string]error{}}

// flagLine matches a flag in the output of flag.PrintDefaults: "  -name" or
// "  -name type".
var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_.-]*)(?:\s+(\S+))?\s*$`)

// flagsOf runs `binary <path...> -h` and returns the flags it lists, or an error if
// the (sub)command does not exist.
func (h *helpCache) flagsOf(path []string) (map[string]flagSpec, error) {
	key := strings.Join(path, " ")
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.flags[key]; ok {
		return f, h.errs[key]
	}
	cmd, cancel := binaryCmd(30*time.Second, append(slices.Clone(path), "-h")...)
	defer cancel()
	out, err := cmd.CombinedOutput()
	flags := map[string]flagSpec{}
	if err != nil {
		err = fmt.Errorf("`ionixsnow %s -h` failed (%v): no such command?\n%s", key, err, firstLines(string(out), 4))
	} else {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
				flags[m[1]] = flagSpec{takesValue: m[2] != ""}
			}
		}
		if len(flags) == 0 {
			err = fmt.Errorf("`ionixsnow %s -h` lists no flags:\n%s", key, firstLines(string(out), 6))
		}
	}
	h.flags[key], h.errs[key] = flags, err
	return flags, err
}

// binaryCmd is `ionixsnow args...` in the test's environment without IONIXSNOW_*
// variables, killed after timeout (or by cancel).
func binaryCmd(timeout time.Duration, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = cleanEnv()
	return cmd, cancel
}

// cleanEnv is the test's environment without IONIXSNOW_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// commandPath is the (sub)command an argument list runs: the leading words that are
// not flags, at most two (`dlq list`).
func commandPath(args []string) []string {
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(path) == 2 {
			break
		}
		path = append(path, a)
	}
	// Only dlq, tenant and keys have subcommands; a second word elsewhere is a stray
	// argument, which checkArgs reports.
	if len(path) == 2 && !slices.Contains([]string{"dlq", "tenant", "keys"}, path[0]) {
		path = path[:1]
	}
	return path
}

// takesTenant reports whether the command takes a tenant id as its one argument
// (`tenant put T`; not `tenant list`).
func takesTenant(path []string) bool {
	return len(path) == 2 && path[0] == "tenant" && path[1] != "list"
}

// checkArgs returns what is wrong with an argument list: an unknown command, a flag
// the command does not have, a flag missing its value, or a stray argument.
func checkArgs(args []string) []string {
	if len(args) == 0 {
		return []string{"no subcommand"}
	}
	path := commandPath(args)
	if len(path) == 0 {
		return []string{fmt.Sprintf("starts with a flag (%s), not a subcommand", args[0])}
	}
	flags, err := deployHelp.flagsOf(path)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	rest := args[len(path):]
	tenantGiven := false
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if takesTenant(path) && !tenantGiven && !strings.HasPrefix(a, "-") {
			tenantGiven = true
			if _, err := tenant.ParseID(a); err != nil {
				probs = append(probs, fmt.Sprintf("tenant %q: %v", a, err))
			}
			continue
		}
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			probs = append(probs, fmt.Sprintf("unexpected argument %q (`ionixsnow %s` takes flags only)", a, strings.Join(path, " ")))
			continue
		}
		name, _, hasValue := splitFlag(a)
		if name == "h" || name == "help" {
			continue
		}
		spec, ok := flags[name]
		if !ok {
			probs = append(probs, fmt.Sprintf("flag --%s is not a flag of `ionixsnow %s` (it has: %s)", name, strings.Join(path, " "), flagNames(flags)))
			continue
		}
		if spec.takesValue && !hasValue {
			if i+1 >= len(rest) {
				probs = append(probs, fmt.Sprintf("flag --%s needs a value", name))
			}
			i++
		}
	}
	if takesTenant(path) && !tenantGiven {
		probs = append(probs, fmt.Sprintf("`ionixsnow %s` needs a tenant id", strings.Join(path, " ")))
	}
	return probs
}

func flagNames(flags map[string]flagSpec) string {
	names := sortedKeys(flags)
	for i, n := range names {
		names[i] = "--" + n
	}
	return strings.Join(names, " ")
}

// splitFlag splits a flag argument, "-name", "--name" or "--name=value".
func splitFlag(a string) (name, value string, hasValue bool) {
	return strings.Cut(strings.TrimLeft(a, "-"), "=")
}

// flagValue returns the value of --name in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		n, v, hasValue := splitFlag(a)
		if !strings.HasPrefix(a, "-") || n != name {
			continue
		}
		if hasValue {
			return v, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		n, _, _ := splitFlag(a)
		if strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}
