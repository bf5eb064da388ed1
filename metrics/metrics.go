// Package metrics exposes ionixsnow's figures to Prometheus with the names of SPEC
// §7. Counters are read from the consumer's own statistics when scraped, so nothing
// on the hot path changes; only ServiceNow request durations are observed as they
// happen, by wrapping the importer.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/servicenow"
)

// Namespace prefixes every metric.
const Namespace = "ionixsnow"

// Source is what the metrics read at scrape time. *consumer.Consumer implements it.
type Source interface {
	Stats() consumer.Snapshot
	Paused() consumer.PauseState
}

// BudgetReader reads the global budget. *budget.KV implements it.
type BudgetReader interface {
	State(ctx context.Context) (budget.State, error)
}

// Metrics is a registry with the process's metrics.
type Metrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
}

// New returns the metrics with the Go and process collectors registered; Watch adds
// the consumer's.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "servicenow_request_duration_seconds",
		Help:      "Duration of ServiceNow import requests by outcome (success, transient, configuration, permanent).",
		Buckets:   []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"outcome"})
	for _, o := range []string{"success", "transient", "configuration", "permanent"} {
		m.duration.WithLabelValues(o) // present from the start, at zero
	}
	m.reg.MustRegister(m.duration)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Importer wraps imp so that every request's duration is observed by outcome.
func (m *Metrics) Importer(imp consumer.Importer) consumer.Importer {
	return timedImporter{imp: imp, duration: m.duration}
}

type timedImporter struct {
	imp      consumer.Importer
	duration *prometheus.HistogramVec
}

func (t timedImporter) Import(ctx context.Context, record map[string]string) (servicenow.Result, error) {
	start := time.Now()
	res, err := t.imp.Import(ctx, record)
	outcome := servicenow.ErrorClass(err)
	if consumer.Unchanged(res) {
		outcome = servicenow.ClassSuccess // a re-post that changed nothing
	}
	t.duration.WithLabelValues(outcome.String()).Observe(time.Since(start).Seconds())
	return res, err
}

// Watch registers the consumer's counters and state, and the budget's remaining
// sends (budget may be nil when the cap is off).
func (m *Metrics) Watch(src Source, budget BudgetReader) {
	m.reg.MustRegister(&consumerCollector{src: src, budget: budget})
}
