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

var (
	receivedDesc = desc("items_received_total", receivedHelp)
	sentDesc     = desc("items_sent_total", sentHelp, "status")
	filteredDesc = desc("items_filtered_total", filteredHelp, "reason")
	skippedDesc  = desc("items_skipped_total", skippedHelp, "reason")
	deadDesc     = desc("dead_letters_total", deadHelp, "reason")
	failedDesc   = desc("items_failed_total", failedHelp)
	requeuedDesc = desc("items_requeued_total", requeuedHelp)
	budgetDesc   = desc("budget_remaining", budgetHelp)
	pausedDesc   = desc("consumer_paused", pausedHelp)
	outageDesc   = desc("consumer_outage", outageHelp)
)

// consumerCollector reads the consumer's statistics at scrape time.
type consumerCollector struct {
	src    Source
	budget BudgetReader
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{receivedDesc, sentDesc, filteredDesc, skippedDesc, deadDesc, failedDesc, requeuedDesc, pausedDesc, outageDesc} {
		ch <- d
	}
	if c.budget != nil {
		ch <- budgetDesc
	}
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(receivedDesc, s.Received)
	counter(sentDesc, s.Created, "inserted")
	counter(sentDesc, s.Updated, "updated")
	counter(sentDesc, s.Unchanged, "unchanged")
	counter(sentDesc, s.Resolved, "resolved")
	counter(sentDesc, s.Reopened, "reopened")
	counter(filteredDesc, s.FilteredCategory, "category")
	counter(filteredDesc, s.FilteredUrgency, "urgency")
	counter(filteredDesc, s.FilteredClosed, "closed")
	counter(skippedDesc, s.Duplicates, "duplicate")
	counter(skippedDesc, s.Superseded, "superseded")
	counter(skippedDesc, s.Present, "present")
	counter(deadDesc, s.DeadInvalid, string(consumer.DeadInvalid))
	counter(deadDesc, s.DeadRejected, string(consumer.DeadRejected))
	counter(deadDesc, s.DeadMaxDeliver, string(consumer.DeadMaxDeliver))
	counter(failedDesc, s.Failed)
	counter(requeuedDesc, s.Requeued)

	p := c.src.Paused()
	ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, flag(p.Paused && p.Configuration))
	ch <- prometheus.MustNewConstMetric(outageDesc, prometheus.GaugeValue, flag(p.Paused && !p.Configuration))
	if c.budget == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), budgetReadTimeout)
	defer cancel()
	st, err := c.budget.State(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(budgetDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, float64(st.Remaining()))
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
