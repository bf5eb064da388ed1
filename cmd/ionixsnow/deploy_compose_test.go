package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// docker-compose.yml: the services that run the binary, and what compose relies on in
// their configuration.

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
	for _, name := range sortedKeys(services) {
		svc, _ := services[name].(map[string]any)
		cs := composeService{name: name, svc: svc, netns: name}
		if nm := str(svc["network_mode"]); strings.HasPrefix(nm, "service:") {
			cs.netns = strings.TrimPrefix(nm, "service:")
		}
		where := "docker-compose.yml service " + name
		image := str(svc["image"])
		build := mapAt(svc, "build")
		dockerfile := str(build["dockerfile"])
		if !strings.Contains(image, "ionixsnow") && filepath.ToSlash(filepath.Clean(dockerfile)) != "deploy/Dockerfile" {
			out = append(out, cs)
			continue
		}
		if dockerfile != "" {
			if _, err := os.Stat(filepath.Join(root, str(build["context"]), dockerfile)); err != nil {
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

// checkComposeConfigurations: each compose service's configuration loads, uses the
// nats service, and agrees with the service around it (ports, grace period, the
// emulator it reaches); what a publisher publishes is valid.
func checkComposeConfigurations(t *testing.T, root string) {
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
		cfg, ok := checkLoadConfig(t, inv)
		if !ok {
			continue
		}
		if cfg.NATS.URL == "" && !slices.Equal(commandPath(inv.args), []string{"keys", "init"}) {
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
		if isLoopback(u.Hostname()) {
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
	cmd, cancel := binaryCmd(60*time.Second, "publish", "--dry-run", "--json", "--file", host)
	defer cancel()
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
