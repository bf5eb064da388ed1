package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/budget"
	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/replay"
	"github.com/ionix/ionixsnow/servicenow"
	"github.com/ionix/ionixsnow/tenant"
)

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func runReplay(e *env, args []string) int {
	fs := e.flagSet("replay", "(--since T | --from-seq N) [--until T] [--category C] [--dry-run] [--missing-only] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	since := fs.String("since", "", "replay messages stored at or after `T` (RFC 3339, or a duration ago such as 6h)")
	fromSeq := fs.Uint64("from-seq", 0, "replay from stream sequence `N`")
	until := fs.String("until", "", "stop at messages stored after `T` (RFC 3339, or a duration ago); default: the stream's end now")
	var categories listFlag
	fs.Var(&categories, "category", "replay only this IONIX category (repeatable or comma-separated); default: the configured filter")
	dryRun := fs.Bool("dry-run", false, "show the range and the time it takes at the cap; send nothing")
	missingOnly := fs.Bool("missing-only", false, "re-send only items whose incident is gone from ServiceNow (Table API read)")
	asJSON := fs.Bool("json", false, "print the plan and the result as JSON")
	tenantFlag := fs.String("tenant", tenant.Default, "replay the items of tenant `T` (SPEC §9) to its instance, within its cap; default: the single-tenant form")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	tid, err := tenant.ParseID(*tenantFlag)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow replay: --tenant: %v\n", err)
		return exitUsage
	}
	now := time.Now()
	r, err := replayRange(*since, *fromSeq, *until, now)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow replay: %v\n", err)
		fs.Usage()
		return exitUsage
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{ServiceNow: !*dryRun && tid == tenant.Default})
	if !ok {
		return code
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := connectNATS(cfg.NATS, log, true)
	if err != nil {
		log.Error().Err(err).Msg("cannot reach NATS")
		return exitFailed
	}
	defer conn.Close()
	if tid != tenant.Default {
		if cfg, err = tenantConfig(ctx, conn, cfg, tid, !*dryRun, log); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow replay: %v\n", err)
			return exitFailed
		}
	}
	filter := filterOf(cfg)
	if len(categories) > 0 {
		filter.Categories = categories
	}
	topo := tenantTopologyOptions(cfg, tid)
	r.FilterSubjects = filter.FilterSubjects(topo.Names.ItemSubjectPrefix())
	r.MissingOnly = *missingOnly
	t, err := ensureTopology(ctx, conn.js, topo)
	if err != nil {
		log.Error().Err(err).Msg("cannot set up the stream")
		return exitFailed
	}
	budget, err := budget.NewKV(t.Budget, cfg.Cap.MaxPerWindow, cfg.Cap.Window, budgetOptions(cfg.Cap, t.Names, log)...)
	if err != nil {
		log.Error().Err(err).Msg("budget")
		return exitFailed
	}
	plan, err := replay.Resolve(ctx, conn.js, t.Stream, r)
	if errors.Is(err, replay.ErrNothingToReplay) {
		fmt.Fprintln(e.stdout, "nothing to replay: no message in that range")
		return exitOK
	}
	if err != nil {
		log.Error().Err(err).Msg("cannot resolve the range")
		return exitFailed
	}
	capETA := timeAtCap(plan.Total, cfg.Cap)
	if *dryRun || !*asJSON {
		printPlan(e.stdout, plan, capETA, *dryRun, *asJSON)
	}
	if *dryRun {
		return exitOK
	}

	snow, err := servicenow.New(cfg.ServiceNow.Client(), log)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow replay: %v\n", err)
		return exitUsage
	}
	opts := consumerOptions(cfg, t.Names)
	opts.Filter = filter
	opts.MaxDeliver = 0 // the replay's own durable delivers without limit
	o := replay.Options{
		Deps:     pipelineDeps(conn, t, snow, budget, log),
		Consumer: opts,
		AckWait:  cfg.Consumer.AckWait,
		Budget:   budget,
		Progress: newReplayReporter(e, log).report,
	}
	if *missingOnly {
		o.Present = func(ctx context.Context, id string) (bool, error) {
			found, err := snow.FindIncidents(ctx, mapping.CorrelationID(id))
			return len(found) > 0, err
		}
	}
	last, err := replay.Run(ctx, conn.js, t.Names.Stream, plan, o)
	printReplayResult(e.stdout, last, err, *asJSON)
	if err != nil {
		return exitFailed
	}
	return exitOK
}

// replayRange reads the range flags: exactly one of --since and --from-seq.
func replayRange(since string, fromSeq uint64, until string, now time.Time) (replay.Range, error) {
	var r replay.Range
	if (since == "") == (fromSeq == 0) {
		return r, errors.New("give exactly one of --since and --from-seq")
	}
	r.FromSeq = fromSeq
	var err error
	if since != "" {
		if r.Since, err = pointInTime(since, now); err != nil {
			return r, fmt.Errorf("--since: %w", err)
		}
	}
	if until != "" {
		if r.Until, err = pointInTime(until, now); err != nil {
			return r, fmt.Errorf("--until: %w", err)
		}
		if !r.Since.IsZero() && r.Until.Before(r.Since) {
			return r, errors.New("--until is before --since")
		}
	}
	return r, nil
}

// pointInTime reads an RFC 3339 time or a duration before now ("6h", "90m").
func pointInTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-24T06:00:00Z) nor a duration ago (6h)", s)
	}
	return now.Add(-d), nil
}

// timeAtCap is how long n sends take at the cap when the budget is otherwise idle.
func timeAtCap(n uint64, c config.Cap) time.Duration {
	if c.MaxPerWindow <= 0 || n <= uint64(c.MaxPerWindow) {
		return 0
	}
	return time.Duration(float64(n-uint64(c.MaxPerWindow)) / float64(c.MaxPerWindow) * float64(c.Window))
}

func printPlan(w io.Writer, p replay.Plan, atCap time.Duration, dryRun, asJSON bool) {
	if asJSON {
		out := map[string]any{
			"first_seq": p.FirstSeq, "last_seq": p.LastSeq, "first_time": p.FirstTime, "last_time": p.LastTime,
			"messages": p.Total, "filter_subjects": p.FilterSubjects, "missing_only": p.MissingOnly,
			"seconds_at_cap": int64(atCap.Seconds()), "dry_run": dryRun, "resumed": p.Resumed,
		}
		if !p.StreamOrder {
			out["by_urgency"] = map[string]uint64{"high": p.Order.Count(replay.PassHigh),
				"medium": p.Order.Count(replay.PassMedium), "low": p.Order.Count(replay.PassLow)}
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	fmt.Fprintf(w, "replay: sequences %d-%d (%s to %s), %d messages", p.FirstSeq, p.LastSeq,
		p.FirstTime.UTC().Format(time.RFC3339), p.LastTime.UTC().Format(time.RFC3339), p.Total)
	if p.MissingOnly {
		fmt.Fprint(w, ", re-sending only items whose incident is gone")
	}
	fmt.Fprintln(w)
	if o := p.Order; !p.StreamOrder {
		fmt.Fprintf(w, "by urgency: %d high, %d medium, %d low, re-sent in that order\n",
			o.Count(replay.PassHigh), o.Count(replay.PassMedium), o.Count(replay.PassLow))
	} else {
		fmt.Fprintln(w, "resuming a replay begun in stream order: it goes on in stream order")
	}
	if atCap > 0 {
		fmt.Fprintf(w, "at the cap this takes about %s\n", atCap.Round(time.Minute))
	}
	if dryRun {
		fmt.Fprintln(w, "dry run: nothing sent (the urgency filter applies when items are sent)")
	}
}

func printReplayResult(w io.Writer, p replay.Progress, err error, asJSON bool) {
	s := p.Stats
	if asJSON {
		out := map[string]any{"done": p.Done, "total": p.Plan.Total, "finished": p.Finished, "resumed": p.Resumed,
			"stats": s, "elapsed_seconds": int64(p.Elapsed.Seconds())}
		if err != nil {
			out["error"] = err.Error()
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	switch {
	case errors.Is(err, replay.ErrStopped):
		fmt.Fprintf(w, "replay stopped at %d of %d; run the same command again to resume\n", p.Done, p.Plan.Total)
	case err != nil:
		fmt.Fprintf(w, "replay failed: %v\n", err)
	default:
		fmt.Fprintf(w, "replay done: %d of %d\n", p.Done, p.Plan.Total)
	}
	fmt.Fprintf(w, "re-sent %d (created %d, updated %d, unchanged %d, resolved %d, reopened %d); not re-sent: %d newer version ticketed, %d incident present, %d filtered; dead-lettered %d\n",
		s.Created+s.Updated+s.Unchanged+s.Resolved+s.Reopened, s.Created, s.Updated, s.Unchanged, s.Resolved, s.Reopened,
		s.Superseded, s.Present, s.Filtered(), s.DeadLettered)
}

// replayReporter shows a replay's progress: a redrawn line on a terminal, else a
// log line every 10 s.
type replayReporter struct {
	e       *env
	logger  zerolog.Logger
	bar     bool
	lastLog time.Time
}

func newReplayReporter(e *env, log zerolog.Logger) *replayReporter {
	return &replayReporter{e: e, logger: log, bar: isTerminal(e.stderr)}
}

func (r *replayReporter) report(p replay.Progress) {
	line := replayLine(p)
	if r.bar {
		end := ""
		if p.Finished {
			end = "\n"
		}
		fmt.Fprintf(r.e.stderr, "\r\x1b[K%s%s", line, end)
		return
	}
	if p.Finished || time.Since(r.lastLog) >= 10*time.Second {
		r.lastLog = time.Now()
		r.logger.Info().Uint64("done", p.Done).Uint64("total", p.Plan.Total).Stringer("pass", p.Pass).Dur("eta", p.ETA).Msg(line)
	}
}

// replayLine renders one progress line.
func replayLine(p replay.Progress) string {
	pct := 100.0
	if p.Plan.Total > 0 {
		pct = 100 * float64(p.Done) / float64(p.Plan.Total)
	}
	s := fmt.Sprintf("replay %d/%d (%.1f%%)", p.Done, p.Plan.Total, pct)
	if !p.Finished {
		s += ", sending " + p.Pass.String()
	}
	if p.Elapsed > 0 && p.Stats.Received > 0 {
		s += fmt.Sprintf(", %.0f/h", float64(p.Stats.Received)/p.Elapsed.Hours())
	}
	if p.ETA > 0 {
		s += ", ETA " + p.ETA.Round(time.Second).String()
	}
	return s
}
