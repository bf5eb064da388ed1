package config

import (
	"errors"
	"strings"
)

// Problem is one thing wrong with the configuration. Key is the dotted key
// (servicenow.instance_url), the key as written for one that is unknown, or
// the file path for a problem with the file as a whole. Message never
// contains a secret value.
type Problem struct {
	Key     string
	Message string
}

func (p Problem) Error() string { return p.Key + ": " + p.Message }

// Problems is every problem found, in the order found; as an error it prints
// one line per problem. errors.As(err, &ps) recovers it from Load, LoadFor,
// Validate and ValidateFor, and errors.As(err, &p) finds the first Problem.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as errors, as errors.Join would.
func (ps Problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// Keys returns the keys with a problem, in order, each once.
func (ps Problems) Keys() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range ps {
		if !seen[p.Key] {
			seen[p.Key] = true
			out = append(out, p.Key)
		}
	}
	return out
}

// err returns ps as an error, or a nil error when there is no problem.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// AsProblems returns the problems in err (as from Load or Validate), or nil.
func AsProblems(err error) Problems {
	var ps Problems
	if errors.As(err, &ps) {
		return ps
	}
	var p Problem
	if errors.As(err, &p) {
		return Problems{p}
	}
	return nil
}

func (ps *Problems) add(key, msg string) { *ps = append(*ps, Problem{Key: key, Message: msg}) }

// Warning is something in the configuration that does not stop a command but
// deserves a fix, such as a secret file that other users may read. Like a
// Problem it names its key and never holds a secret value.
type Warning struct {
	Key     string
	Message string
}

func (w Warning) String() string { return w.Key + ": " + w.Message }
