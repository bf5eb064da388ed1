package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ionix/ionixsnow/config"
)

// The deployment files (docker-compose.yml, deploy/Dockerfile, deploy/kubernetes,
// deploy/README.md) run the ionixsnow binary with arguments and environment that
// nothing compiles. These tests hold them to the binary: every subcommand and flag
// they use must be one `ionixsnow <command> -h` lists, every IONIXSNOW_* variable
// must name a configuration key, and the configuration each container ends up with
// (its config file, its environment, its secret files) must load and validate as the
// command it runs requires.

// deployInvocation is one run of the ionixsnow binary described by a deployment file.
type deployInvocation struct {
	where string            // for messages: file and service or container
	args  []string          // after the binary: subcommand, flags
	env   map[string]string // literal values; secret references resolved to placeholders
	// files maps a path inside the container to its content (config files, secret
	// files), as far as the manifest mounts them; fileErrs explains paths that are
	// referenced but not mounted.
	files    map[string]string
	fileErrs map[string]string
	hostPath func(containerPath string) (string, bool) // compose bind mounts
}

func (inv deployInvocation) subcommand() string {
	if len(inv.args) == 0 {
		return ""
	}
	return inv.args[0]
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// ---------------------------------------------------------------------------
// The binary's own description of its commands and flags.

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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(slices.Clone(path), "-h")...)
	cmd.Env = cleanEnv()
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
	// Only dlq has subcommands; a second word elsewhere is a stray argument,
	// which checkArgs reports.
	if len(path) == 2 && path[0] != "dlq" {
		path = path[:1]
	}
	return path
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
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			probs = append(probs, fmt.Sprintf("unexpected argument %q (`ionixsnow %s` takes flags only)", a, strings.Join(path, " ")))
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
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
	return probs
}

func flagNames(flags map[string]flagSpec) string {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, "--"+n)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// flagValue returns the value of --name in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
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
		n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// The configuration's own description of its environment variables.

// configEnvNames returns every environment variable the loader reads, found by
// loading with a lookup that records what it is asked for, and the subset that
// name a secret's file (IONIXSNOW_..._FILE).
func configEnvNames(t *testing.T) (all, secretFiles map[string]bool) {
	t.Helper()
	all = map[string]bool{}
	_, _ = config.LoadFor("", func(k string) (string, bool) {
		all[k] = true
		return "", false
	}, config.Needs{})
	if len(all) == 0 {
		t.Fatal("config.LoadFor asked for no environment variable")
	}
	secretFiles = map[string]bool{}
	for _, key := range config.SecretKeys() {
		name := config.EnvName(key) + "_FILE"
		if !all[name] {
			t.Fatalf("the loader does not read %s for the secret %s", name, key)
		}
		secretFiles[name] = true
	}
	return all, secretFiles
}

// needsOf is what the configuration must hold for the command (the Needs its
// run function passes to loadConfig).
func needsOf(args []string) config.Needs {
	path := commandPath(args)
	if len(path) == 0 {
		return config.Needs{}
	}
	switch path[0] {
	case "consume", "doctor":
		return config.Needs{ServiceNow: true}
	case "replay":
		return config.Needs{ServiceNow: !hasFlag(args, "dry-run")}
	case "poll":
		return config.Needs{IONIX: true}
	}
	return config.Needs{}
}

// loadConfigOf loads the configuration an invocation runs with: its --config file
// (as mounted), its environment, and its secret files (as mounted).
func loadConfigOf(t *testing.T, inv deployInvocation) (config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := ""
	if p, ok := flagValue(inv.args, "config"); ok {
		content, err := inv.read(p)
		if err != nil {
			return config.Config{}, fmt.Errorf("--config %s: %v", p, err)
		}
		cfgPath = filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfgPath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secretFileEnv := map[string]bool{}
	for _, key := range config.SecretKeys() {
		secretFileEnv[config.EnvName(key)+"_FILE"] = true
	}
	env := map[string]string{}
	for name, v := range inv.env {
		env[name] = v
		if !secretFileEnv[name] {
			continue
		}
		content, err := inv.read(v)
		if err != nil {
			return config.Config{}, fmt.Errorf("%s=%s: %v", name, v, err)
		}
		local := filepath.Join(dir, strings.ToLower(name))
		if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		env[name] = local
	}
	return config.LoadFor(cfgPath, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}, needsOf(inv.args))
}

// read returns the content of a file inside the container.
func (inv deployInvocation) read(p string) (string, error) {
	if c, ok := inv.files[p]; ok {
		return c, nil
	}
	if msg, ok := inv.fileErrs[p]; ok {
		return "", errors.New(msg)
	}
	if inv.hostPath != nil {
		if hp, ok := inv.hostPath(p); ok {
			b, err := os.ReadFile(hp)
			return string(b), err
		}
	}
	return "", errors.New("no such file in the container (not mounted by the manifest)")
}

// ---------------------------------------------------------------------------
// YAML helpers over map[string]any.

func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func mapAt(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, _ := m[p].(map[string]any)
		if next == nil {
			return nil
		}
		m = next
	}
	return m
}

func listAt(m map[string]any, path ...string) []any {
	if len(path) == 0 || m == nil {
		return nil
	}
	parent := mapAt(m, path[:len(path)-1]...)
	if parent == nil {
		return nil
	}
	l, _ := parent[path[len(path)-1]].([]any)
	return l
}

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// strList reads a YAML list of scalars, or a string split on spaces (compose).
func strList(v any) ([]string, bool) {
	switch v := v.(type) {
	case nil:
		return nil, false
	case string:
		return strings.Fields(v), true
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = str(e)
		}
		return out, true
	}
	return nil, false
}

// ---------------------------------------------------------------------------
// docker-compose.yml

type composeService struct {
	name   string
	svc    map[string]any
	inv    *deployInvocation // nil if not an ionixsnow service
	netns  string            // the service whose network namespace it runs in
	binary bool
}

func composeInvocations(t *testing.T, root string) ([]composeService, []string) {
	t.Helper()
	path := filepath.Join(root, "docker-compose.yml")
	docs := readYAMLDocs(t, path)
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d documents, want 1", len(docs))
	}
	services := mapAt(docs[0], "services")
	if len(services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	var probs []string
	var out []composeService
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		svc, _ := services[name].(map[string]any)
		cs := composeService{name: name, svc: svc, netns: name}
		if nm := str(svc["network_mode"]); strings.HasPrefix(nm, "service:") {
			cs.netns = strings.TrimPrefix(nm, "service:")
		}
		where := "docker-compose.yml service " + name
		image := str(svc["image"])
		dockerfile := str(mapAt(svc, "build")["dockerfile"])
		if !strings.Contains(image, "ionixsnow") && filepath.ToSlash(filepath.Clean(dockerfile)) != "deploy/Dockerfile" {
			out = append(out, cs)
			continue
		}
		if dockerfile != "" {
			if _, err := os.Stat(filepath.Join(root, str(mapAt(svc, "build")["context"]), dockerfile)); err != nil {
				probs = append(probs, fmt.Sprintf("%s: build.dockerfile: %v", where, err))
			}
		}
		ep, hasEntrypoint := strList(svc["entrypoint"])
		if hasEntrypoint && !slices.Equal(ep, []string{"/ionixsnow"}) {
			probs = append(probs, fmt.Sprintf("%s: entrypoint %q replaces the binary; pass the subcommand in command", where, ep))
		}
		// As compose runs it: command replaces the image's CMD; an entrypoint
		// drops it.
		args, hasCommand := strList(svc["command"])
		if !hasCommand && !hasEntrypoint {
			args = dockerfileCmd(t, root)
		}
		env := map[string]string{}
		switch e := svc["environment"].(type) {
		case map[string]any:
			for k, v := range e {
				env[k] = str(v)
			}
		case []any:
			for _, kv := range e {
				k, v, _ := strings.Cut(str(kv), "=")
				env[k] = v
			}
		}
		for k, v := range env {
			if strings.Contains(v, "$") {
				probs = append(probs, fmt.Sprintf("%s: %s uses interpolation (%q), which this test does not follow", where, k, v))
			}
		}
		binds := map[string]string{} // container path -> host path
		for _, v := range listAt(svc, "volumes") {
			parts := strings.Split(str(v), ":")
			if len(parts) >= 2 && (strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/")) {
				host := parts[0]
				if !filepath.IsAbs(host) {
					host = filepath.Join(root, host)
				}
				if _, err := os.Stat(host); err != nil {
					probs = append(probs, fmt.Sprintf("%s: volume %s: %v", where, v, err))
				}
				binds[parts[1]] = host
			}
		}
		cs.binary = true
		cs.inv = &deployInvocation{
			where: where, args: args, env: env,
			hostPath: func(p string) (string, bool) {
				for dst, src := range binds {
					if p == dst {
						return src, true
					}
					if rel, ok := strings.CutPrefix(p, strings.TrimSuffix(dst, "/")+"/"); ok {
						return filepath.Join(src, filepath.FromSlash(rel)), true
					}
				}
				return "", false
			},
		}
		out = append(out, cs)
	}
	return out, probs
}

// dockerfileCmd returns the default command of the image (CMD of deploy/Dockerfile),
// after checking that its entrypoint is the binary.
func dockerfileCmd(t *testing.T, root string) []string {
	t.Helper()
	ep, cmd := dockerfileEntrypoint(t, root)
	if !slices.Equal(ep, []string{"/ionixsnow"}) {
		t.Errorf("deploy/Dockerfile: ENTRYPOINT %q, want [\"/ionixsnow\"] (the manifests pass only the subcommand)", ep)
	}
	return cmd
}

func dockerfileEntrypoint(t *testing.T, root string) (entrypoint, cmd []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Instructions of the final stage; exec (JSON) form only.
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			entrypoint, cmd = nil, nil
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &v); err != nil {
				t.Fatalf("deploy/Dockerfile: %s must be in exec form, a JSON array: %s", instr, rest)
			}
			if strings.EqualFold(instr, "CMD") {
				cmd = v
			} else {
				entrypoint = v
			}
		}
	}
	return entrypoint, cmd
}

// ---------------------------------------------------------------------------
// Kubernetes manifests (deploy/kubernetes, plain files and kustomize bases).

type k8sObject struct {
	file string
	doc  map[string]any
}

func (o k8sObject) kind() string { return str(o.doc["kind"]) }
func (o k8sObject) name() string { return str(mapAt(o.doc, "metadata")["name"]) }
func (o k8sObject) String() string {
	return fmt.Sprintf("%s %s/%s", o.file, o.kind(), o.name())
}

type k8sManifests struct {
	objects    []k8sObject
	configMaps map[string]map[string]string // name -> key -> content
	secrets    map[string]map[string]bool   // name -> keys
	probs      []string
}

func loadK8s(t *testing.T, root string) *k8sManifests {
	t.Helper()
	m := &k8sManifests{configMaps: map[string]map[string]string{}, secrets: map[string]map[string]bool{}}
	base := filepath.Join(root, "deploy", "kubernetes")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, doc := range readYAMLDocs(t, p) {
			o := k8sObject{file: filepath.ToSlash(rel), doc: doc}
			switch o.kind() {
			case "Kustomization":
				m.kustomization(t, filepath.Dir(p), o)
			case "ConfigMap":
				data := map[string]string{}
				for k, v := range mapAt(doc, "data") {
					data[k] = str(v)
				}
				m.configMaps[o.name()] = data
			case "Secret":
				keys := map[string]bool{}
				for k := range mapAt(doc, "data") {
					keys[k] = true
				}
				for k := range mapAt(doc, "stringData") {
					keys[k] = true
				}
				m.secrets[o.name()] = keys
			}
			m.objects = append(m.objects, o)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// kustomization checks that a kustomization lists files that exist, and every
// manifest beside it, and reads its configMapGenerator.
func (m *k8sManifests) kustomization(t *testing.T, dir string, o k8sObject) {
	t.Helper()
	exists := func(field, p string) {
		if strings.Contains(p, "://") { // a remote base
			return
		}
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			m.probs = append(m.probs, fmt.Sprintf("%s: %s lists %s: %v", o.file, field, p, err))
		}
	}
	listed := map[string]bool{"kustomization.yaml": true}
	for _, field := range []string{"resources", "components", "crds"} {
		for _, r := range listAt(o.doc, field) {
			exists(field, str(r))
			listed[filepath.Clean(str(r))] = true
		}
	}
	for _, p := range listAt(o.doc, "patches") {
		if pm, ok := p.(map[string]any); ok && str(pm["path"]) != "" {
			exists("patches", str(pm["path"]))
			listed[filepath.Clean(str(pm["path"]))] = true
		}
	}
	for _, field := range []string{"patchesStrategicMerge"} {
		for _, r := range listAt(o.doc, field) {
			exists(field, str(r))
			listed[filepath.Clean(str(r))] = true
		}
	}
	for _, g := range listAt(o.doc, "configMapGenerator") {
		gm, _ := g.(map[string]any)
		name := str(gm["name"])
		data := m.configMaps[name]
		if data == nil {
			data = map[string]string{}
			m.configMaps[name] = data
		}
		for _, f := range listAt(gm, "files") {
			key, p, ok := strings.Cut(str(f), "=")
			if !ok {
				key, p = filepath.Base(str(f)), str(f)
			}
			exists("configMapGenerator "+name, p)
			listed[filepath.Clean(p)] = true
			if b, err := os.ReadFile(filepath.Join(dir, p)); err == nil {
				data[key] = string(b)
			}
		}
		for _, l := range listAt(gm, "literals") {
			k, v, _ := strings.Cut(str(l), "=")
			data[k] = v
		}
	}
	// A manifest beside the kustomization that it does not list is most likely
	// forgotten; examples (*.example.yaml) are listed on purpose by nobody.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || (filepath.Ext(n) != ".yaml" && filepath.Ext(n) != ".yml") || strings.HasSuffix(n, ".example.yaml") {
			continue
		}
		if !listed[n] {
			m.probs = append(m.probs, fmt.Sprintf("%s: %s is beside it but not listed (resources, generators or patches)", o.file, n))
		}
	}
}

// podTemplate returns the pod template spec of a workload, or nil.
func podTemplate(o k8sObject) map[string]any {
	switch o.kind() {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return mapAt(o.doc, "spec", "template")
	case "CronJob":
		return mapAt(o.doc, "spec", "jobTemplate", "spec", "template")
	case "Pod":
		return o.doc
	}
	return nil
}

// k8sContainer is an ionixsnow container of a workload.
type k8sContainer struct {
	obj       k8sObject
	template  map[string]any
	container map[string]any
	inv       deployInvocation
}

func (m *k8sManifests) containers(t *testing.T, root string) []k8sContainer {
	t.Helper()
	var out []k8sContainer
	for _, o := range m.objects {
		tpl := podTemplate(o)
		if tpl == nil {
			continue
		}
		spec := mapAt(tpl, "spec")
		volumes := map[string]map[string]any{}
		for _, v := range listAt(spec, "volumes") {
			vm, _ := v.(map[string]any)
			volumes[str(vm["name"])] = vm
		}
		for _, field := range []string{"initContainers", "containers"} {
			for _, c := range listAt(spec, field) {
				cm, _ := c.(map[string]any)
				if !strings.Contains(str(cm["image"]), "ionixsnow") {
					continue
				}
				where := fmt.Sprintf("%s container %s", o, str(cm["name"]))
				// As Kubernetes runs it: command replaces the image's ENTRYPOINT and
				// CMD, args replaces CMD.
				var args []string
				cmd, hasCommand := strList(cm["command"])
				if hasCommand {
					if len(cmd) == 0 || (cmd[0] != "/ionixsnow" && cmd[0] != "ionixsnow") {
						m.probs = append(m.probs, fmt.Sprintf("%s: command %q does not run the binary", where, cmd))
						continue
					}
					args = cmd[1:]
				}
				more, hasArgs := strList(cm["args"])
				if !hasCommand && !hasArgs {
					more = dockerfileCmd(t, root)
				}
				args = append(args, more...)
				inv := deployInvocation{where: where, args: args,
					env: map[string]string{}, files: map[string]string{}, fileErrs: map[string]string{}}
				m.resolveEnv(where, cm, &inv)
				m.resolveMounts(where, cm, volumes, &inv)
				out = append(out, k8sContainer{obj: o, template: tpl, container: cm, inv: inv})
			}
		}
	}
	return out
}

// resolveEnv fills inv.env from a container's env: literal values, and placeholders
// for values from a Secret (whose key must exist) or a ConfigMap.
func (m *k8sManifests) resolveEnv(where string, c map[string]any, inv *deployInvocation) {
	for _, e := range listAt(c, "env") {
		em, _ := e.(map[string]any)
		name := str(em["name"])
		switch {
		case em["value"] != nil:
			inv.env[name] = str(em["value"])
		case mapAt(em, "valueFrom", "secretKeyRef") != nil:
			ref := mapAt(em, "valueFrom", "secretKeyRef")
			if msg := m.checkSecretKey(str(ref["name"]), str(ref["key"])); msg != "" {
				m.probs = append(m.probs, fmt.Sprintf("%s: env %s: %s", where, name, msg))
			}
			inv.env[name] = "placeholder-" + str(ref["key"])
		case mapAt(em, "valueFrom", "configMapKeyRef") != nil:
			ref := mapAt(em, "valueFrom", "configMapKeyRef")
			v, ok := m.configMaps[str(ref["name"])][str(ref["key"])]
			if !ok {
				m.probs = append(m.probs, fmt.Sprintf("%s: env %s: no key %q in ConfigMap %s", where, name, str(ref["key"]), str(ref["name"])))
			}
			inv.env[name] = v
		default:
			inv.env[name] = "placeholder"
		}
	}
	if len(listAt(c, "envFrom")) > 0 {
		m.probs = append(m.probs, where+": envFrom hides which variables the container gets; list them under env")
	}
}

// checkSecretKey reports a key missing from a Secret defined in the manifests (the
// example Secret documents the keys the Deployments read).
func (m *k8sManifests) checkSecretKey(secret, key string) string {
	keys, ok := m.secrets[secret]
	if !ok {
		return fmt.Sprintf("Secret %s is defined nowhere under deploy/kubernetes (not even as an example)", secret)
	}
	if !keys[key] {
		return fmt.Sprintf("Secret %s has no key %q", secret, key)
	}
	return ""
}

// resolveMounts maps the files of mounted ConfigMaps and Secrets into inv.files
// (secret files get a placeholder content).
func (m *k8sManifests) resolveMounts(where string, c map[string]any, volumes map[string]map[string]any, inv *deployInvocation) {
	for _, vmAny := range listAt(c, "volumeMounts") {
		vm, _ := vmAny.(map[string]any)
		mountPath := str(vm["mountPath"])
		vol, ok := volumes[str(vm["name"])]
		if !ok {
			m.probs = append(m.probs, fmt.Sprintf("%s: volumeMount %s names no volume", where, str(vm["name"])))
			continue
		}
		var (
			source  string
			keys    map[string]bool
			content func(key string) string
			items   []any
		)
		switch {
		case mapAt(vol, "configMap") != nil:
			cm := mapAt(vol, "configMap")
			name := str(cm["name"])
			data, ok := m.configMaps[name]
			if !ok {
				m.probs = append(m.probs, fmt.Sprintf("%s: volume %s: ConfigMap %s is defined nowhere", where, str(vol["name"]), name))
				continue
			}
			source, items = "ConfigMap "+name, listAt(cm, "items")
			keys = map[string]bool{}
			for k := range data {
				keys[k] = true
			}
			content = func(k string) string { return data[k] }
		case mapAt(vol, "secret") != nil:
			sec := mapAt(vol, "secret")
			name := str(sec["secretName"])
			source, items = "Secret "+name, listAt(sec, "items")
			keys = m.secrets[name]
			if keys == nil {
				m.probs = append(m.probs, fmt.Sprintf("%s: volume %s: Secret %s is defined nowhere under deploy/kubernetes (not even as an example)", where, str(vol["name"]), name))
				continue
			}
			content = func(k string) string { return "placeholder-" + k }
		default:
			continue
		}
		files := map[string]string{} // file name in the mount -> key
		if len(items) > 0 {
			for _, it := range items {
				im, _ := it.(map[string]any)
				key := str(im["key"])
				if !keys[key] {
					m.probs = append(m.probs, fmt.Sprintf("%s: volume %s: %s has no key %q", where, str(vol["name"]), source, key))
				}
				files[str(im["path"])] = key
			}
		} else {
			for k := range keys {
				files[k] = k
			}
		}
		if sub := str(vm["subPath"]); sub != "" {
			if key, ok := files[sub]; ok {
				inv.files[mountPath] = content(key)
			} else {
				inv.fileErrs[mountPath] = fmt.Sprintf("subPath %s is not in %s", sub, source)
			}
			continue
		}
		for f, key := range files {
			inv.files[strings.TrimSuffix(mountPath, "/")+"/"+f] = content(key)
		}
		// A path under the mount that the volume lacks: say which keys it has.
		inv.fileErrs[mountPath] = "is a directory"
		prefix := strings.TrimSuffix(mountPath, "/") + "/"
		for _, e := range append(slices.Clone(inv.args), envValues(inv.env)...) {
			if strings.HasPrefix(e, prefix) {
				if _, ok := inv.files[e]; !ok {
					inv.fileErrs[e] = fmt.Sprintf("not in %s mounted at %s (it has: %s)", source, mountPath, strings.Join(sortedKeys(files), ", "))
				}
			}
		}
	}
}

func envValues(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, v := range env {
		out = append(out, v)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
// deploy/README.md: the ionixsnow command lines in its code blocks.

func readmeInvocations(t *testing.T, root string) []deployInvocation {
	t.Helper()
	p := filepath.Join(root, "deploy", "README.md")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []deployInvocation
	inBlock := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			continue
		}
		if c := strings.Index(line, " #"); c >= 0 {
			line = line[:c]
		}
		fields := strings.Fields(line)
		for j, f := range fields {
			// The binary: /ionixsnow (in the image), or ionixsnow at the start of a
			// command, not as an argument (a namespace, say).
			atStart := j == 0 || slices.Contains([]string{"--", "|", "&&", ";", "$"}, fields[j-1])
			if f != "/ionixsnow" && (f != "ionixsnow" || !atStart) {
				continue
			}
			var args []string
			for _, a := range fields[j+1:] {
				if slices.Contains([]string{"|", "&&", ";", "||", ">", "2>&1", "\\"}, a) {
					break
				}
				args = append(args, a)
			}
			if len(args) == 0 || strings.HasPrefix(args[0], "<") {
				continue
			}
			out = append(out, deployInvocation{where: fmt.Sprintf("deploy/README.md:%d", i+1), args: args})
			break
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The tests.

// allDeployInvocations gathers every run of the binary the deployment files describe.
// Problems of the files' structure are reported by TestDeployConfigurationsLoad.
func allDeployInvocations(t *testing.T, root string) []deployInvocation {
	t.Helper()
	invs := []deployInvocation{{where: "deploy/Dockerfile CMD", args: dockerfileCmd(t, root)}}
	services, _ := composeInvocations(t, root)
	for _, s := range services {
		if s.inv != nil {
			invs = append(invs, *s.inv)
		}
	}
	for _, c := range loadK8s(t, root).containers(t, root) {
		invs = append(invs, c.inv)
	}
	return append(invs, readmeInvocations(t, root)...)
}

// TestDeployUsesRealCommandsAndFlags: every subcommand and flag the deployment files
// pass to the binary is one it has (`ionixsnow <command> -h`).
func TestDeployUsesRealCommandsAndFlags(t *testing.T) {
	root := repoRoot(t)
	invs := allDeployInvocations(t, root)
	seen := map[string]bool{}
	for _, inv := range invs {
		seen[inv.where] = true
		t.Logf("%s: ionixsnow %s", inv.where, strings.Join(inv.args, " "))
		for _, p := range checkArgs(inv.args) {
			t.Errorf("%s: `ionixsnow %s`: %s", inv.where, strings.Join(inv.args, " "), p)
		}
	}
	// The files this test is about must have been found at all.
	for _, want := range []string{"deploy/Dockerfile CMD", "docker-compose.yml service ", "deploy/kubernetes/", "deploy/README.md:"} {
		found := false
		for w := range seen {
			found = found || strings.HasPrefix(w, want)
		}
		if !found {
			t.Errorf("no ionixsnow invocation found in %s", want)
		}
	}
}

// TestDeployEnvironmentVariablesNameKeys: every IONIXSNOW_* variable the deployment
// files set is one the configuration reads, and every _FILE variable names a secret.
func TestDeployEnvironmentVariablesNameKeys(t *testing.T) {
	root := repoRoot(t)
	known, secretFiles := configEnvNames(t)
	invs := allDeployInvocations(t, root)
	n := 0
	for _, inv := range invs {
		for name := range inv.env {
			if !strings.HasPrefix(name, config.EnvPrefix) {
				continue
			}
			n++
			base, isFile := strings.CutSuffix(name, "_FILE")
			switch {
			case known[name]:
			case isFile && known[base]:
				t.Errorf("%s: %s: only secrets can be read from a file (%s)", inv.where, name, strings.Join(sortedKeys(secretFiles), ", "))
			default:
				msg := "names no configuration key"
				if err := config.UnknownEnv([]string{name + "=x"}); err != nil {
					msg = err.Error()
				}
				t.Errorf("%s: %s", inv.where, msg)
			}
		}
	}
	if n == 0 {
		t.Error("no IONIXSNOW_* variable found in the deployment files")
	}
}

// TestDeployConfigurationsLoad: each container's configuration (its config file as
// mounted, its environment, its secret files) loads and passes the validation of the
// command it runs; and the settings the manifests depend on agree with it.
func TestDeployConfigurationsLoad(t *testing.T) {
	root := repoRoot(t)

	t.Run("compose", func(t *testing.T) {
		services, probs := composeInvocations(t, root)
		for _, p := range probs {
			t.Error(p)
		}
		byName := map[string]composeService{}
		for _, s := range services {
			byName[s.name] = s
		}
		listens := map[string]map[string]string{} // netns -> port -> service
		claim := func(s composeService, addr string) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return
			}
			if listens[s.netns] == nil {
				listens[s.netns] = map[string]string{}
			}
			if other, dup := listens[s.netns][port]; dup {
				t.Errorf("docker-compose.yml: services %s and %s share a network namespace and both listen on port %s", other, s.name, port)
			}
			listens[s.netns][port] = s.name
		}
		for _, s := range services {
			if s.inv == nil {
				continue
			}
			inv := *s.inv
			if inv.subcommand() == "servicenow-sim" {
				if l, ok := flagValue(inv.args, "listen"); ok {
					claim(s, l)
				}
			}
			if inv.subcommand() == "servicenow-sim" || inv.subcommand() == "demo" {
				continue
			}
			cfg, err := loadConfigOf(t, inv)
			if err != nil {
				t.Errorf("%s: `ionixsnow %s` would refuse its configuration:\n%v", inv.where, strings.Join(inv.args, " "), err)
				continue
			}
			if cfg.NATS.URL == "" {
				t.Errorf("%s: no nats.url: the process would run its own embedded NATS server, not use the nats service", inv.where)
			}
			if inv.subcommand() != "consume" {
				if inv.subcommand() == "publish" {
					checkSampleFile(t, inv)
				}
				continue
			}
			if cfg.HTTP.Listen != "" {
				claim(s, cfg.HTTP.Listen)
			}
			if grace, ok := s.svc["stop_grace_period"]; !ok {
				t.Errorf("%s: no stop_grace_period: compose kills after 10s, before consumer.drain_timeout (%s)", inv.where, cfg.Consumer.DrainTimeout)
			} else if d, err := time.ParseDuration(str(grace)); err != nil || d <= cfg.Consumer.DrainTimeout {
				t.Errorf("%s: stop_grace_period %v must be longer than consumer.drain_timeout (%s)", inv.where, grace, cfg.Consumer.DrainTimeout)
			}
			// A loopback ServiceNow URL reaches only what runs in the same network
			// namespace: the emulator, listening on that port.
			u, _ := url.Parse(cfg.ServiceNow.InstanceURL)
			if host := u.Hostname(); host == "localhost" || net.ParseIP(host).IsLoopback() {
				sim, ok := byName[s.netns]
				simListen := ""
				if ok && sim.inv != nil && sim.inv.subcommand() == "servicenow-sim" {
					simListen, _ = flagValue(sim.inv.args, "listen")
				}
				_, simPort, _ := net.SplitHostPort(simListen)
				if simPort == "" || simPort != u.Port() {
					t.Errorf("%s: servicenow.instance_url %s is loopback, so the service must run in the network namespace of a servicenow-sim listening on port %s (network_mode: service:<sim>)", inv.where, cfg.ServiceNow.InstanceURL, u.Port())
				}
			}
		}
	})

	t.Run("kubernetes", func(t *testing.T) {
		k8s := loadK8s(t, root)
		containers := k8s.containers(t, root)
		for _, p := range k8s.probs {
			t.Error(p)
		}
		if len(containers) == 0 {
			t.Fatal("no ionixsnow container under deploy/kubernetes")
		}
		for _, sel := range k8s.selectors() {
			if !k8s.selects(sel.labels) {
				t.Errorf("%s: selector %v matches no pod template", sel.obj, sel.labels)
			}
		}
		var shared *config.Config
		sharedFrom := ""
		for _, c := range containers {
			inv := c.inv
			cfg, err := loadConfigOf(t, inv)
			if err != nil {
				t.Errorf("%s: `ionixsnow %s` would refuse its configuration:\n%v", inv.where, strings.Join(inv.args, " "), err)
				continue
			}
			if cfg.NATS.URL == "" {
				t.Errorf("%s: no nats.url: every pod would run its own embedded NATS server", inv.where)
			}
			// Every process creates or updates the stream, the consumer and the
			// buckets: they must agree on them, or they undo each other's settings.
			if shared == nil {
				shared, sharedFrom = &cfg, inv.where
			} else if cfg.NATS.Replicas != shared.NATS.Replicas || cfg.NATS.Stream != shared.NATS.Stream || cfg.NATS.Consumer != shared.NATS.Consumer || cfg.NATS.URL != shared.NATS.URL {
				t.Errorf("%s: nats settings (url %s, stream %s, consumer %s, replicas %d) differ from %s's", inv.where, cfg.NATS.URL, cfg.NATS.Stream, cfg.NATS.Consumer, cfg.NATS.Replicas, sharedFrom)
			}
			checkK8sContainer(t, c, cfg)
		}
	})
}

// checkK8sContainer checks what a pod spec relies on in the configuration: probes and
// scraping on http.listen, a grace period longer than the drain, MaxAckPending that
// covers every replica.
func checkK8sContainer(t *testing.T, c k8sContainer, cfg config.Config) {
	t.Helper()
	where := c.inv.where
	ports := map[string]string{} // port name or number -> number
	for _, p := range listAt(c.container, "ports") {
		pm, _ := p.(map[string]any)
		n := str(pm["containerPort"])
		ports[n] = n
		if name := str(pm["name"]); name != "" {
			ports[name] = n
		}
	}
	listenHost, listenPort, _ := net.SplitHostPort(cfg.HTTP.Listen)
	servesHTTP := func(what, port string) {
		num, ok := ports[port]
		if !ok {
			num = port
		}
		switch {
		case cfg.HTTP.Listen == "":
			t.Errorf("%s: %s on port %s, but http.listen is empty (no HTTP server)", where, what, port)
		case num != listenPort:
			t.Errorf("%s: %s on port %s (%s), but http.listen is %s", where, what, port, num, cfg.HTTP.Listen)
		case listenHost == "localhost" || net.ParseIP(listenHost).IsLoopback():
			t.Errorf("%s: %s cannot reach http.listen %s: loopback inside the pod; use 0.0.0.0:%s", where, what, cfg.HTTP.Listen, listenPort)
		}
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		get := mapAt(c.container, probe, "httpGet")
		if get == nil {
			continue
		}
		if c.inv.subcommand() != "consume" {
			t.Errorf("%s: %s, but only consume serves HTTP", where, probe)
			continue
		}
		if p := str(get["path"]); !slices.Contains([]string{"/healthz", "/readyz"}, p) {
			t.Errorf("%s: %s path %s; consume serves /healthz and /readyz", where, probe, p)
		}
		servesHTTP(probe, str(get["port"]))
	}
	if ann := mapAt(c.template, "metadata", "annotations"); str(ann["prometheus.io/scrape"]) == "true" {
		servesHTTP("prometheus.io/port", str(ann["prometheus.io/port"]))
	}
	if c.inv.subcommand() != "consume" {
		return
	}
	grace := 30
	if g, ok := mapAt(c.template, "spec")["terminationGracePeriodSeconds"]; ok {
		grace, _ = strconv.Atoi(str(g))
	}
	if time.Duration(grace)*time.Second <= cfg.Consumer.DrainTimeout {
		t.Errorf("%s: terminationGracePeriodSeconds %d must be longer than consumer.drain_timeout (%s), or posts in flight are killed", where, grace, cfg.Consumer.DrainTimeout)
	}
	replicas := 1
	if r, ok := mapAt(c.obj.doc, "spec")["replicas"]; ok {
		replicas, _ = strconv.Atoi(str(r))
	}
	if need := replicas * cfg.Consumer.Concurrency; cfg.Consumer.MaxAckPending < need {
		t.Errorf("%s: consumer.max_ack_pending %d is below replicas x concurrency (%d x %d)", where, cfg.Consumer.MaxAckPending, replicas, cfg.Consumer.Concurrency)
	}
}

type k8sSelector struct {
	obj    k8sObject
	labels map[string]string
}

// selectors are the label selectors of Services and PodDisruptionBudgets.
func (m *k8sManifests) selectors() []k8sSelector {
	var out []k8sSelector
	for _, o := range m.objects {
		var sel map[string]any
		switch o.kind() {
		case "Service":
			sel = mapAt(o.doc, "spec", "selector")
		case "PodDisruptionBudget":
			sel = mapAt(o.doc, "spec", "selector", "matchLabels")
		}
		if len(sel) == 0 {
			continue
		}
		labels := map[string]string{}
		for k, v := range sel {
			labels[k] = str(v)
		}
		out = append(out, k8sSelector{obj: o, labels: labels})
	}
	return out
}

func (m *k8sManifests) selects(labels map[string]string) bool {
	for _, o := range m.objects {
		tpl := podTemplate(o)
		if tpl == nil {
			continue
		}
		have := mapAt(tpl, "metadata", "labels")
		match := true
		for k, v := range labels {
			match = match && str(have[k]) == v
		}
		if match {
			return true
		}
	}
	return false
}

// checkSampleFile runs `publish --dry-run` on the file a compose publisher publishes:
// every item in it must be valid.
func checkSampleFile(t *testing.T, inv deployInvocation) {
	t.Helper()
	p, ok := flagValue(inv.args, "file")
	if !ok || p == "-" {
		return
	}
	host, ok := inv.hostPath(p)
	if !ok {
		t.Errorf("%s: --file %s is not in a volume mounted from the repository", inv.where, p)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "publish", "--dry-run", "--json", "--file", host)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("%s: publish --dry-run --file %s: %v\n%s%s", inv.where, host, err, stdout.String(), firstLines(stderr.String(), 10))
		return
	}
	var res struct {
		Published int `json:"published"`
		Invalid   int `json:"invalid"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Errorf("%s: publish --dry-run --json: %v\n%s", inv.where, err, stdout.String())
		return
	}
	if res.Published == 0 || res.Invalid != 0 {
		t.Errorf("%s: %s: %d valid items, %d invalid; want all valid\n%s", inv.where, host, res.Published, res.Invalid, stdout.String())
	}
}
