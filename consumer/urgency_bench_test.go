package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/servicenow/emulator"
	"github.com/ionix/ionixsnow/topology"
)

// BenchmarkHighItemBehindABacklog measures how long a High item waits behind a
// backlog of Low items at the default cap (1,000 an hour, paced, 20 sends held for
// High items), one replica: published right after the express lane engaged (it
// must first read the whole backlog) and once it has caught up. Real time: the High
// item never waits for the cap, so nothing here takes hours.
//
//	go test -run '^$' -bench HighItemBehindABacklog -benchtime 1x ./consumer
func BenchmarkHighItemBehindABacklog(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("backlog=%d", n), func(b *testing.B) {
			for range b.N {
				first, later := highBehind(b, n)
				b.ReportMetric(float64(first.Milliseconds()), "ms-at-engage")
				b.ReportMetric(float64(later.Milliseconds()), "ms-caught-up")
			}
		})
	}
}

func highBehind(b *testing.B, backlog int) (atEngage, caughtUp time.Duration) {
	e := newLaneRig(b)
	sim, js, ctx := e.sim, e.js, context.Background()
	publish := func(id string, urgency float64, async bool) time.Time {
		it := ionix.ActionItem{ID: id, Title: "Finding " + id, Type: "Vulnerability", Urgency: urgency, FirstOpenedAt: "2026-01-01T00:00:00Z"}
		raw, _ := json.Marshal(it)
		m := nats.NewMsg(ionix.Subject("", ionix.EventOpened, it.Type))
		m.Header.Set(topology.HeaderEvent, "opened")
		m.Data = raw
		at := time.Now()
		if async {
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
			return at
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			b.Fatal(err)
		}
		return at
	}
	for i := range backlog {
		publish(fmt.Sprintf("low-%06d", i), 3, true)
	}
	<-js.PublishAsyncComplete()
	// As consume runs it at the default cap: a burst of 50, 20 sends held for High.
	e.replica(1000, time.Hour, nil, budget.WithPacing(50), budget.WithReserve(20))
	imported := func(id string) time.Time {
		for _, r := range sim.Requests() {
			if correlationOf(r) == id {
				return r.At
			}
		}
		return time.Time{}
	}
	testkit.WaitFor(b, 60*time.Second, "the burst", func() bool { return sim.ImportCount() >= 50 }) // then the pace
	p := publish("high-1", 9.5, false)
	testkit.WaitFor(b, 120*time.Second, "high-1 imported", func() bool { return !imported("high-1").IsZero() })
	atEngage = imported("high-1").Sub(p)
	p = publish("high-2", 9.7, false)
	testkit.WaitFor(b, 120*time.Second, "high-2 imported", func() bool { return !imported("high-2").IsZero() })
	caughtUp = imported("high-2").Sub(p)
	if !slices.ContainsFunc(sim.Incidents(), func(in emulator.Incident) bool { return in.CorrelationID == "ionix:high-2" }) {
		b.Fatal("no incident for high-2")
	}
	return atEngage, caughtUp
}
