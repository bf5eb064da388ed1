package main

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Kubernetes manifests (deploy/kubernetes, plain files and kustomize bases), read into
// the invocations of their ionixsnow containers: arguments, environment, and the
// files of the ConfigMaps and Secrets they mount.

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
		if err != nil || d.IsDir() || !isYAML(p) {
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
				m.secrets[o.name()] = keySet(mapAt(doc, "data"), mapAt(doc, "stringData"))
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
	listed := map[string]bool{"kustomization.yaml": true}
	list := func(field, p string) {
		listed[filepath.Clean(p)] = true
		if strings.Contains(p, "://") { // a remote base
			return
		}
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			m.probs = append(m.probs, fmt.Sprintf("%s: %s lists %s: %v", o.file, field, p, err))
		}
	}
	for _, field := range []string{"resources", "components", "crds", "patches", "patchesStrategicMerge"} {
		for _, r := range listAt(o.doc, field) {
			p := str(r)
			if field == "patches" { // {path: file} or an inline patch
				pm, _ := r.(map[string]any)
				p = str(pm["path"])
			}
			if p != "" {
				list(field, p)
			}
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
			list("configMapGenerator "+name, p)
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
		if e.IsDir() || !isYAML(n) || strings.HasSuffix(n, ".example.yaml") {
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
	if msg := m.undefinedSecret(secret); msg != "" {
		return msg
	}
	if !m.secrets[secret][key] {
		return fmt.Sprintf("Secret %s has no key %q", secret, key)
	}
	return ""
}

// undefinedSecret reports a Secret that the manifests do not define.
func (m *k8sManifests) undefinedSecret(name string) string {
	if _, ok := m.secrets[name]; !ok {
		return fmt.Sprintf("Secret %s is defined nowhere under deploy/kubernetes (not even as an example)", name)
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
			keys = keySet(data)
			content = func(k string) string { return data[k] }
		case mapAt(vol, "secret") != nil:
			sec := mapAt(vol, "secret")
			name := str(sec["secretName"])
			if msg := m.undefinedSecret(name); msg != "" {
				m.probs = append(m.probs, fmt.Sprintf("%s: volume %s: %s", where, str(vol["name"]), msg))
				continue
			}
			source, items = "Secret "+name, listAt(sec, "items")
			keys = m.secrets[name]
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
		dir := strings.TrimSuffix(mountPath, "/") + "/"
		for f, key := range files {
			inv.files[dir+f] = content(key)
		}
		// A path under the mount that the volume lacks: say which keys it has.
		inv.fileErrs[mountPath] = "is a directory"
		for _, e := range append(slices.Clone(inv.args), envValues(inv.env)...) {
			if strings.HasPrefix(e, dir) {
				if _, ok := inv.files[e]; !ok {
					inv.fileErrs[e] = fmt.Sprintf("not in %s mounted at %s (it has: %s)", source, mountPath, strings.Join(sortedKeys(files), ", "))
				}
			}
		}
	}
}

func envValues(env map[string]string) []string {
	return slices.Collect(maps.Values(env))
}
