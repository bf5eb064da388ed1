package status

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Print writes the report as a table, one line per object, then the problems:
//
//	stream        IONIX_ACTION_ITEMS    12,345 messages (seq 1–12,345)
//	consumer      servicenow            pending 4,200   ack pending 8   redelivered 2
//	budget        1,000 / 1,000 per 1h  next free slot 14:03:12 UTC (in 3m12s)
//	dead letters  3                     (ionixsnow dlq list)
//	drain ETA     about 4h12m at the cap (backlog 4,208, done about 18:12:00 UTC)
//
// "about" marks an ETA estimated from the budget's used count and next free slot
// rather than from its ledger (see DrainETA).
func Print(w io.Writer, r Report) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }

	s := r.Stream
	msgs := plural(s.Messages, "message", "messages")
	if s.Messages > 0 {
		msgs += fmt.Sprintf(" (seq %s–%s)", group(s.FirstSeq), group(s.LastSeq))
	}
	row("stream", s.Name, msgs)

	c := r.Consumer
	if c.Exists {
		row("consumer", c.Name, fmt.Sprintf("pending %s   ack pending %s   redelivered %s",
			group(c.Pending), group(uint64(max(c.AckPending, 0))), group(uint64(max(c.Redelivered, 0)))))
	} else {
		row("consumer", c.Name, "not created yet (ionixsnow consume creates it)")
	}

	b := r.Budget
	quota := fmt.Sprintf("%s / %s per %s", group(uint64(max(b.Used, 0))), group(uint64(max(b.Limit, 0))), shortWindow(b.WindowSeconds))
	switch {
	case !b.Readable:
		row("budget", quota, "ledger unreadable (see below)")
	case b.Remaining > 0:
		row("budget", quota, group(uint64(b.Remaining))+" free now")
	default:
		row("budget", quota, "next free slot "+clock(b.NextFreeAt, r.GeneratedAt)+" (in "+Duration(b.NextFreeAt.Sub(r.GeneratedAt))+")")
	}

	if r.DeadLetters > 0 {
		row("dead letters", group(r.DeadLetters), "(ionixsnow dlq list)")
	} else {
		row("dead letters", "0")
	}

	// The drain line's text is one cell, left out of the column alignment.
	d := r.Drain
	switch {
	case d.Backlog == 0:
		row("drain ETA", "0s, nothing to send")
	case !d.LimitedByCap:
		row("drain ETA", fmt.Sprintf("0s, not limited by the cap (backlog %s fits in the free slots)", group(d.Backlog)))
	default:
		eta := Duration(d.Duration)
		if d.Approximate {
			eta = "about " + eta
		}
		row("drain ETA", fmt.Sprintf("%s at the cap (backlog %s, done about %s)", eta, group(d.Backlog), clock(d.At, r.GeneratedAt)))
	}
	if u := r.BacklogByUrgency; d.Backlog > 0 && u != nil {
		var parts []string
		for _, b := range []string{"high", "medium", "low"} {
			part := fmt.Sprintf("%s %s", b, group(u[b]))
			if u[b] > 0 && r.DrainETAByUrgency[b] > 0 {
				part += " (sent in " + Duration(time.Duration(r.DrainETAByUrgency[b])*time.Second) + ")"
			}
			parts = append(parts, part)
		}
		row("by urgency", strings.Join(parts, "   "))
	}
	_ = tw.Flush()

	for _, p := range r.Problems {
		fmt.Fprintf(w, "note: %s\n", p)
	}
}

// Duration formats d for people: 45s, 3m12s, 4h12m, 3d4h.
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int64(d/time.Minute), int64(d/time.Second)%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int64(d/time.Hour), int64(d/time.Minute)%60)
	default:
		return fmt.Sprintf("%dd%dh", int64(d/(24*time.Hour)), int64(d/time.Hour)%24)
	}
}

// shortWindow formats a window of seconds as 1h, 1h30m, 90s or 1.5s.
func shortWindow(seconds float64) string {
	s := time.Duration(seconds * float64(time.Second)).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// clock is t as a UTC time of day, with the date when it is not now's day.
func clock(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04:05 UTC")
	}
	return t.Format("2006-01-02 15:04:05 UTC")
}

// group writes n with thousands separators: 12,345.
func group(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return group(n) + " " + many
}
