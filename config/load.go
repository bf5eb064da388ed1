package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load builds the configuration: Default(), then the YAML file at path (if
// path is not ""), then the environment as seen through lookupEnv (pass
// os.LookupEnv; nil means no environment), then secrets from files (see the
// package documentation). It then runs Validate.
//
// On any problem Load returns a Problems error listing all of them, each
// naming its key (and the line of the file or the environment variable it
// came from), together with the Config as far as it could be built, which
// must not be used to run. When the file cannot be read or parsed, only the
// problems of the file and the environment are reported: the rest would be
// guesses about a configuration that was not seen.
//
// Load only looks variables up, so it cannot refuse unknown IONIXSNOW_*
// variables, and it drops the warnings of loading: commands use LoadEnviron.
func Load(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	return LoadFor(path, lookupEnv, Needs{})
}

// LoadFor is Load followed by ValidateFor(n) instead of Validate, so that a
// command reports the problems of loading, of consistency and its own
// requirements all at once.
func LoadFor(path string, lookupEnv func(string) (string, bool), n Needs) (Config, error) {
	cfg, _, err := load(path, lookupEnv, nil, n)
	return cfg, err
}

// LoadEnviron is LoadFor over the whole environment, given as NAME=value
// entries (os.Environ()): among the problems it also lists every IONIXSNOW_*
// variable that names no key (see UnknownEnv), so that a misspelt variable
// stops a command as a misspelt YAML key does. It also returns the warnings
// of loading (a secret file that other users may read), for the command to
// report once; they do not make it fail.
func LoadEnviron(path string, environ []string, n Needs) (Config, []Warning, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if _, dup := vars[name]; !dup { // the first wins, as for os.LookupEnv
			vars[name] = value
		}
	}
	lookup := func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
	return load(path, lookup, environ, n)
}

func load(path string, lookupEnv func(string) (string, bool), environ []string, n Needs) (Config, []Warning, error) {
	cfg := Default()
	l := &loader{files: map[string]fileRef{}, bad: map[string]bool{}}
	if path != "" {
		l.loadFile(path, &cfg)
	}
	if lookupEnv != nil {
		l.loadEnv(lookupEnv, &cfg)
	}
	l.ps = append(l.ps, unknownEnv(environ)...)
	l.readSecretFiles(&cfg)
	normalise(&cfg)
	if !l.fileFailed {
		for _, p := range cfg.problems(n) {
			if !l.bad[p.Key] {
				l.ps = append(l.ps, p)
			}
		}
	}
	l.ps = cfg.scrub(l.ps)
	slices.SortStableFunc(l.ps, func(a, b Problem) int { return cmp.Compare(rank(a.Key, path), rank(b.Key, path)) })
	return cfg, l.warnings, l.ps.err()
}

// rank orders problems as the keys are ordered in the file: problems of the
// file as a whole first, then by section and key (a key's _file form and
// unknown keys with their section), unknown sections last.
func rank(key, path string) int {
	if key == path {
		return -len(leaves) * 2
	}
	base := key
	if b, ok := strings.CutSuffix(key, "_file"); ok && IsSecret(b) {
		base = b
	}
	sec, _, hasKey := strings.Cut(key, ".")
	r := len(leaves) * 2
	for i, lf := range leaves {
		switch {
		case lf.key == base:
			return i * 2
		case lf.section == sec && !hasKey:
			return i*2 - 1 // the section itself, before its first key
		case lf.section == sec:
			r = i*2 + 1 // an unknown key: after the section's last key
		}
	}
	return r
}

type fileRef struct {
	path   string
	origin string // where the path was set, for messages
}

type loader struct {
	// only, when set, are the keys this load may set (a tenant's settings):
	// any other key or section is a problem, and only secrets come from the
	// environment.
	only       map[string]bool
	ignore     map[string]bool // top-level keys skipped without a word
	ps         Problems
	warnings   []Warning
	bad        map[string]bool    // keys with a loading problem: their validation problems are noise
	files      map[string]fileRef // secret key -> file to read it from
	fileFailed bool               // the YAML file could not be read or parsed
}

func (l *loader) problem(key, msg string) {
	l.ps.add(key, msg)
	l.bad[key] = true
	if base, ok := strings.CutSuffix(key, "_file"); ok && IsSecret(base) {
		l.bad[base] = true
	}
}

func (l *loader) loadFile(path string, cfg *Config) {
	data, err := os.ReadFile(path)
	if err != nil {
		l.fileFailed = true
		l.ps.add(path, "cannot read the config file: "+fileErr(err))
		return
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // an empty file: defaults
			return
		}
		l.fileFailed = true
		l.ps.add(path, "not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		l.fileFailed = true
		l.ps.add(path, "must hold exactly one YAML document")
		return
	}
	at := func(n *yaml.Node) string { return fmt.Sprintf(" (%s:%d)", path, n.Line) }

	root := deref(doc.Content[0])
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		l.fileFailed = true
		l.ps.add(path, "must be a mapping of sections ("+strings.Join(sections, ", ")+")"+at(root))
		return
	}
	valueSet := map[string]*yaml.Node{} // secrets given a value in the file
	fileSet := map[string]*yaml.Node{}  // secrets given a <key>_file in the file
	seenSec := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := deref(root.Content[i]), deref(root.Content[i+1])
		sec := kn.Value
		if line, dup := seenSec[sec]; dup {
			l.problem(sec, fmt.Sprintf("section given twice (first at line %d)", line)+at(kn))
			continue
		}
		seenSec[sec] = kn.Line
		if l.ignore[sec] {
			continue
		}
		if !isSection(sec) {
			l.problem(sec, "unknown section"+suggest(sec, l.sections())+at(kn))
			continue
		}
		if !l.sectionAllowed(sec) {
			l.problem(sec, notTenant+at(kn))
			continue
		}
		if isNull(vn) {
			continue
		}
		if vn.Kind != yaml.MappingNode {
			l.problem(sec, "must be a mapping of keys"+at(vn))
			continue
		}
		seen := map[string]int{}
		for j := 0; j+1 < len(vn.Content); j += 2 {
			kn, val := deref(vn.Content[j]), deref(vn.Content[j+1])
			key := sec + "." + kn.Value
			if line, dup := seen[kn.Value]; dup {
				l.problem(key, fmt.Sprintf("key given twice (first at line %d)", line)+at(kn))
				continue
			}
			seen[kn.Value] = kn.Line
			if lf, ok := byKey[key]; ok {
				if l.only != nil && !l.only[key] {
					l.problem(key, notTenant+at(kn))
					continue
				}
				l.setNode(lf, val, cfg, at(val))
				if lf.secret && !isNull(val) && val.Value != "" {
					valueSet[lf.key] = kn
				}
				continue
			}
			if base, ok := strings.CutSuffix(key, "_file"); ok && IsSecret(base) {
				if l.only != nil && !l.only[base] {
					l.problem(key, notTenant+at(kn))
					continue
				}
				switch {
				case isNull(val) || (val.Kind == yaml.ScalarNode && val.Value == ""):
				case val.Kind != yaml.ScalarNode:
					l.problem(key, "must be a file path"+at(val))
				default:
					l.files[base] = fileRef{path: val.Value, origin: fmt.Sprintf("%s:%d", path, kn.Line)}
					fileSet[base] = kn
				}
				continue
			}
			l.problem(key, "unknown key"+suggest(kn.Value, l.sectionKeys(sec))+at(kn))
		}
	}
	for _, lf := range leaves {
		if valueSet[lf.key] != nil && fileSet[lf.key] != nil {
			l.problem(lf.key, fmt.Sprintf("given both as %s and as %s_file; give one", lf.name, lf.name)+at(fileSet[lf.key]))
			delete(l.files, lf.key)
		}
	}
}

// setNode sets the key lf from a YAML value. A null value keeps the default.
func (l *loader) setNode(lf *leaf, n *yaml.Node, cfg *Config, at string) {
	if isNull(n) {
		return
	}
	v := lf.field(cfg)
	switch {
	case lf.isList():
		if n.Kind != yaml.SequenceNode {
			l.problem(lf.key, "must be a list of strings, such as [Vulnerability, PKI]"+at)
			return
		}
		var list []string
		for _, e := range n.Content {
			e = deref(e)
			if e.Kind != yaml.ScalarNode {
				l.problem(lf.key, fmt.Sprintf("item at line %d must be a string", e.Line)+at)
				return
			}
			list = append(list, scalar(e))
		}
		v.Set(reflect.ValueOf(list))
	case lf.isMap():
		if n.Kind != yaml.MappingNode {
			l.problem(lf.key, "must be a mapping of category to value, such as {DNS: \"3\"}"+at)
			return
		}
		m := map[string]string{}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, val := deref(n.Content[j]), deref(n.Content[j+1])
			if k.Kind != yaml.ScalarNode || val.Kind != yaml.ScalarNode {
				l.problem(lf.key, fmt.Sprintf("entry at line %d must map a string to a string", k.Line)+at)
				return
			}
			if _, dup := m[k.Value]; dup {
				l.problem(lf.key, fmt.Sprintf("%q given twice", k.Value)+at)
				return
			}
			m[k.Value] = scalar(val)
		}
		if len(m) == 0 {
			m = nil
		}
		v.Set(reflect.ValueOf(m))
	default:
		if n.Kind != yaml.ScalarNode {
			l.problem(lf.key, "must be "+lf.describe()+", not a list or mapping"+at)
			return
		}
		if err := lf.setScalar(v, n.Value); err != nil {
			l.problem(lf.key, fmt.Sprintf("%v, got %s", err, show(lf, n.Value))+at)
		}
	}
}

func (l *loader) loadEnv(lookup func(string) (string, bool), cfg *Config) {
	for i := range leaves {
		lf := &leaves[i]
		if l.only != nil && (!l.only[lf.key] || !lf.secret) {
			continue
		}
		from := " (from " + lf.env + ")"
		s, ok := lookup(lf.env)
		valueSet := ok && s != ""
		if valueSet {
			l.setEnv(lf, s, cfg, from)
		}
		if !lf.secret {
			continue
		}
		p, ok := lookup(lf.env + "_FILE")
		switch {
		case ok && p != "" && valueSet:
			l.problem(lf.key, "both "+lf.env+" and "+lf.env+"_FILE are set; set one")
			delete(l.files, lf.key)
		case ok && p != "":
			l.files[lf.key] = fileRef{path: p, origin: "from " + lf.env + "_FILE"}
		case valueSet:
			delete(l.files, lf.key) // the environment beats a file named in YAML
		}
	}
}

func (l *loader) setEnv(lf *leaf, s string, cfg *Config, from string) {
	v := lf.field(cfg)
	switch {
	case lf.isList():
		var list []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		v.Set(reflect.ValueOf(list))
	case lf.isMap():
		m := map[string]string{}
		for _, e := range strings.Split(s, ",") {
			if strings.TrimSpace(e) == "" {
				continue
			}
			k, val, ok := strings.Cut(e, "=")
			k, val = strings.TrimSpace(k), strings.TrimSpace(val)
			switch {
			case !ok || k == "":
				l.problem(lf.key, fmt.Sprintf("entry %q must be category=value (pairs separated by commas)", strings.TrimSpace(e))+from)
				return
			case hasKey(m, k):
				l.problem(lf.key, fmt.Sprintf("%q given twice", k)+from)
				return
			}
			m[k] = val
		}
		if len(m) == 0 {
			m = nil
		}
		v.Set(reflect.ValueOf(m))
	default:
		if err := lf.setScalar(v, s); err != nil {
			l.problem(lf.key, fmt.Sprintf("%v, got %s", err, show(lf, s))+from)
		}
	}
}

func (l *loader) readSecretFiles(cfg *Config) {
	for i := range leaves {
		lf := &leaves[i]
		ref, ok := l.files[lf.key]
		if !ok {
			continue
		}
		key := lf.key + "_file"
		s, info, err := readSecretFile(ref.path)
		switch {
		case errors.Is(err, errSecretFileTooLarge):
			l.problem(key, fmt.Sprintf("%s is larger than %d KiB, so it cannot be a secret; name the file that holds only the secret (%s)",
				ref.path, MaxSecretFileSize>>10, ref.origin))
			continue
		case err != nil:
			l.problem(key, fmt.Sprintf("cannot read %s: %s (%s)", ref.path, fileErr(err), ref.origin))
			continue
		case s == "":
			l.problem(key, fmt.Sprintf("%s is empty (%s)", ref.path, ref.origin))
			continue
		}
		if who := othersMayAccess(info); who != "" {
			l.warnings = append(l.warnings, Warning{Key: key, Message: fmt.Sprintf(
				"%s can be read or changed by %s (mode %04o, %s); make it readable by this user alone (chmod 600) or by this process's group alone (chmod 640)",
				ref.path, who, info.Mode().Perm(), ref.origin)})
		}
		lf.field(cfg).SetString(s)
	}
}

// normalise trims what users add by accident and downstream code would trip
// on: spaces around URLs, trailing slashes of base URLs, case of log values.
func normalise(c *Config) {
	c.NATS.URL = strings.TrimSpace(c.NATS.URL)
	c.ServiceNow.InstanceURL = strings.TrimRight(strings.TrimSpace(c.ServiceNow.InstanceURL), "/")
	c.IONIX.APIURL = strings.TrimRight(strings.TrimSpace(c.IONIX.APIURL), "/")
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Log.Format = strings.ToLower(strings.TrimSpace(c.Log.Format))
}

// fileErr describes a file error without repeating the path.
func fileErr(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// show quotes a value for a message: never a secret, never the password of
// a URL, never more than a line.
func show(lf *leaf, s string) string {
	if lf.secret {
		return RedactedValue
	}
	if lf.key == "nats.url" {
		s = redactURLs(s)
	}
	const maxLen = 80
	if r := []rune(s); len(r) > maxLen {
		s = string(r[:maxLen]) + "…"
	}
	return strconv.Quote(s)
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func scalar(n *yaml.Node) string {
	if isNull(n) {
		return ""
	}
	return n.Value
}

func isSection(s string) bool {
	for _, sec := range sections {
		if s == sec {
			return true
		}
	}
	return false
}

// sections are the sections this load accepts, for suggestions.
func (l *loader) sections() []string {
	var out []string
	for _, sec := range sections {
		if l.sectionAllowed(sec) {
			out = append(out, sec)
		}
	}
	return out
}

// sectionAllowed reports whether this load may set keys of the section.
func (l *loader) sectionAllowed(sec string) bool {
	if l.only == nil {
		return true
	}
	for _, lf := range leaves {
		if lf.section == sec && l.only[lf.key] {
			return true
		}
	}
	return false
}

// sectionKeys are the keys of sec this load accepts, with the _file forms of
// secrets, for suggestions.
func (l *loader) sectionKeys(sec string) []string {
	var out []string
	for _, lf := range leaves {
		if lf.section == sec && (l.only == nil || l.only[lf.key]) {
			out = append(out, lf.name)
			if lf.secret {
				out = append(out, lf.name+"_file")
			}
		}
	}
	return out
}

func suggest(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return "; did you mean " + c + "?"
	}
	return ""
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
