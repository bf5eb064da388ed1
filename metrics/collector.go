package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ionix/ionixsnow/consumer"
)

// budgetReadTimeout bounds the budget read of one scrape.
const budgetReadTimeout = 2 * time.Second

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

const (
	receivedHelp = "Action-item messages received from the stream (redeliveries included)."
	sentHelp     = "Items ServiceNow accepted (inserted, updated, unchanged, resolved or reopened)."
	filteredHelp = "Items acknowledged without a post because a filter left them out."
	skippedHelp  = "Items acknowledged without a post because nothing needed sending."
	deadHelp     = "Items moved to the dead-letter stream."
	failedHelp   = "Posts that failed for a reason not the item's fault; the item stays on the stream."
	requeuedHelp = "Newest versions copied to the end of the stream because an older one may have overtaken them."
	budgetHelp   = "Sends the global budget would grant now."
	pausedHelp   = "1 while a ServiceNow configuration error pauses sending."
	outageHelp   = "1 while sending is paused because ServiceNow is down."
)

// descs are the consumer's metric descriptions, with labels before their own (none,
// or "tenant").
type descs struct {
	received, sent, filtered, skipped, dead, failed, requeued, budget, paused, outage *prometheus.Desc
}

func newDescs(labels ...string) descs {
	with := func(own ...string) []string { return append(append([]string{}, labels...), own...) }
	return descs{
		received: desc("items_received_total", receivedHelp, with()...),
		sent:     desc("items_sent_total", sentHelp, with("status")...),
		filtered: desc("items_filtered_total", filteredHelp, with("reason")...),
		skipped:  desc("items_skipped_total", skippedHelp, with("reason")...),
		dead:     desc("dead_letters_total", deadHelp, with("reason")...),
		failed:   desc("items_failed_total", failedHelp, with()...),
		requeued: desc("items_requeued_total", requeuedHelp, with()...),
		budget:   desc("budget_remaining", budgetHelp, with()...),
		paused:   desc("consumer_paused", pausedHelp, with()...),
		outage:   desc("consumer_outage", outageHelp, with()...),
	}
}

func (d descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{d.received, d.sent, d.filtered, d.skipped, d.dead, d.failed, d.requeued, d.budget, d.paused, d.outage}
}

var plain = newDescs()

// collect sends one consumer's figures: its counters, its pause, and (budget not nil)
// its budget, each series with labels first.
func (d descs) collect(ch chan<- prometheus.Metric, s consumer.Snapshot, p consumer.PauseState, budget BudgetReader, labels ...string) {
	counter := func(desc *prometheus.Desc, v int64, own ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), append(append([]string{}, labels...), own...)...)
	}
	counter(d.received, s.Received)
	counter(d.sent, s.Created, "inserted")
	counter(d.sent, s.Updated, "updated")
	counter(d.sent, s.Unchanged, "unchanged")
	counter(d.sent, s.Resolved, "resolved")
	counter(d.sent, s.Reopened, "reopened")
	counter(d.filtered, s.FilteredCategory, "category")
	counter(d.filtered, s.FilteredUrgency, "urgency")
	counter(d.filtered, s.FilteredClosed, "closed")
	counter(d.skipped, s.Duplicates, "duplicate")
	counter(d.skipped, s.Superseded, "superseded")
	counter(d.skipped, s.Present, "present")
	counter(d.dead, s.DeadInvalid, string(consumer.DeadInvalid))
	counter(d.dead, s.DeadRejected, string(consumer.DeadRejected))
	counter(d.dead, s.DeadMaxDeliver, string(consumer.DeadMaxDeliver))
	counter(d.failed, s.Failed)
	counter(d.requeued, s.Requeued)
	ch <- prometheus.MustNewConstMetric(d.paused, prometheus.GaugeValue, flag(p.Paused && p.Configuration), labels...)
	ch <- prometheus.MustNewConstMetric(d.outage, prometheus.GaugeValue, flag(p.Paused && !p.Configuration), labels...)
	if budget == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), budgetReadTimeout)
	defer cancel()
	st, err := budget.State(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d.budget, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(d.budget, prometheus.GaugeValue, float64(st.Remaining()), labels...)
}

// consumerCollector reads the consumer's statistics at scrape time.
type consumerCollector struct {
	src    Source
	budget BudgetReader
}

// BacklogSource is a Source that knows its backlog (ionixsnow_backlog{urgency}).
type BacklogSource interface {
	Backlog() uint64
	BacklogByUrgency() (counts [3]int, sorted bool)
}

// plainBacklog is ionixsnow_backlog{urgency} of the single-tenant form.
var plainBacklog = desc("backlog", backlogHelp, "urgency")

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range plain.all() {
		if d != plain.budget || c.budget != nil {
			ch <- d
		}
	}
	if _, ok := c.src.(BacklogSource); ok {
		ch <- plainBacklog
	}
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	plain.collect(ch, c.src.Stats(), c.src.Paused(), c.budget)
	if b, ok := c.src.(BacklogSource); ok {
		backlogSeries(ch, plainBacklog, b)
	}
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
