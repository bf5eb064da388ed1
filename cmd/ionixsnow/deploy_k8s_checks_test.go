package main

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/config"
)

// What the Kubernetes manifests rely on in the configuration of their containers, and
// on each other (selectors).

// checkK8sConfigurations: each container's configuration loads, uses a NATS server
// and agrees with the others on the stream; its pod spec agrees with it
// (checkK8sContainer); every selector selects a pod template.
func checkK8sConfigurations(t *testing.T, root string) {
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
		cfg, ok := checkLoadConfig(t, inv)
		if !ok {
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
		case isLoopback(listenHost):
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
