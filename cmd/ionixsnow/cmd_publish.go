package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/ionix"
	"github.com/ionix/ionixsnow/publisher"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

// Progress reporting of publish.
const (
	// progressBarDelay keeps the bar off runs that end sooner (small inputs).
	progressBarDelay = 500 * time.Millisecond
	// progressLogEvery spaces the progress log lines when stderr is no terminal.
	progressLogEvery = 10 * time.Second
	// progressBarWidth is the width of the bar between its brackets.
	progressBarWidth = 12
	// defaultColumns is the terminal width assumed when COLUMNS is not set.
	defaultColumns = 80
)

func runPublish(e *env, args []string) int {
	fs := e.flagSet("publish", "[--file F] [--tenant T] [--event opened|closed] [--dry-run] [--json] [--max-in-flight N] [--max-payload BYTES]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	tenantFlag := fs.String("tenant", tenant.Default, "publish the items of tenant `T` (SPEC §9: under ionix.action_items.<T>.…); default: the single-tenant form")
	file := fs.String("file", "", "read action items from `F` (default: stdin)")
	event := fs.String("event", string(ionix.EventOpened), "event to publish the items as: opened or closed")
	asJSON := fs.Bool("json", false, "print the counts and problems as JSON")
	dryRun := fs.Bool("dry-run", false, "read and validate the items and report what would be published; connect to nothing")
	maxInFlight := fs.Int("max-in-flight", publisher.DefaultMaxInFlight, "publishes awaiting their acknowledgement at once (`N`)")
	maxPayload := fs.Int64("max-payload", 0, "largest message in `BYTES` (body and headers): a --dry-run assumes 1048576, the NATS default, unless told; a real run takes the server's max_payload, lowered to this when smaller. Larger items are named invalid and skipped")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *maxPayload < 0 {
		fmt.Fprintf(e.stderr, "ionixsnow publish: --max-payload must be a number of bytes, not %d\n", *maxPayload)
		return exitUsage
	}
	tid, err := tenant.ParseID(*tenantFlag)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow publish: --tenant: %v\n", err)
		return exitUsage
	}
	ev := ionix.Event(*event)
	if ev != ionix.EventOpened && ev != ionix.EventClosed {
		fmt.Fprintf(e.stderr, "ionixsnow publish: --event must be opened or closed, not %q\n", *event)
		return exitUsage
	}
	if *maxInFlight < 1 {
		fmt.Fprintf(e.stderr, "ionixsnow publish: --max-in-flight must be at least 1, not %d\n", *maxInFlight)
		return exitUsage
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{})
	if !ok {
		return code
	}
	in := e.stdin
	if *file != "" && *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow publish: %v\n", err)
			return exitFailed
		}
		defer f.Close()
		in = f
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A second signal ends the process at once.
	context.AfterFunc(ctx, stop)

	topo := tenantTopologyOptions(cfg, tid)
	opts := &publisher.PublishAllOptions{
		MaxInFlight: *maxInFlight,
		MaxPayload:  *maxPayload,
		DryRun:      *dryRun,
		Size:        inputSize(in),
		Progress:    newProgressReporter(e, in, log).report,
		Log:         log,
	}
	var pub *publisher.Publisher
	if *dryRun {
		pub = publisher.ForTenant(nil, topo.Names.ItemSubjectPrefix(), tid)
	} else {
		conn, err := connectNATS(cfg.NATS, log, true)
		if err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow publish: %v\n", err)
			return exitFailed
		}
		defer conn.Close()
		if err := retryWhileStarting(ctx, func(ctx context.Context) error {
			_, err := topology.EnsureStream(ctx, conn.js, topo)
			return err
		}); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow publish: %v\n", err)
			return exitFailed
		}
		pub = publisher.ForTenant(conn.js, topo.Names.ItemSubjectPrefix(), tid)
	}
	res, err := pub.PublishAll(ctx, in, ev, opts)
	printPublishResult(e.stdout, e.stderr, res, err, *asJSON)
	if err != nil || res.Invalid > 0 {
		return exitFailed
	}
	return exitOK
}

// inputSize is the size of in when it is a regular file, else 0 (unknown).
func inputSize(in io.Reader) int64 {
	f, ok := in.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return st.Size()
}

// printPublishResult prints the counts on stdout: a line of text, or with asJSON
// one JSON object that also lists the problems. In text mode each problem (and, in
// a dry run, each repeated item) gets a line on stderr. An error stopping the run
// goes to stderr either way.
func printPublishResult(stdout, stderr io.Writer, res publisher.Result, err error, asJSON bool) {
	switch {
	case asJSON:
		_ = json.NewEncoder(stdout).Encode(newPublishReport(res, err))
	case res.DryRun:
		printItemLines(stderr, res)
		fmt.Fprintf(stdout, "dry run: would publish %d, repeated in input %d, invalid %d (nothing was sent; duplicates already in the stream are not checked)\n",
			res.Published, res.Repeated, res.Invalid)
	default:
		printItemLines(stderr, res)
		fmt.Fprintf(stdout, "published %d, duplicate %d, invalid %d\n", res.Published, res.Duplicates, res.Invalid)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ionixsnow publish: stopped: %v\n", err)
		if res.Unconfirmed > 0 {
			fmt.Fprintf(stderr, "ionixsnow publish: %d sent but not confirmed (refused or unanswered); publishing the same input again is safe: the stream drops what it already holds\n", res.Unconfirmed)
		}
	}
}

func printItemLines(w io.Writer, res publisher.Result) {
	for _, p := range res.Problems {
		fmt.Fprintf(w, "invalid: %s\n", p)
	}
	for _, r := range res.Repeats {
		fmt.Fprintf(w, "repeated in input: %s\n", r)
	}
}

// publishReport is the output of publish --json.
type publishReport struct {
	Published   int             `json:"published"` // in a dry run: would be published
	Duplicate   int             `json:"duplicate"`
	Invalid     int             `json:"invalid"`
	DryRun      bool            `json:"dry_run"`
	Repeated    *int            `json:"repeated,omitempty"` // dry run only
	Unconfirmed int             `json:"unconfirmed,omitempty"`
	Problems    []reportProblem `json:"problems"`
	Repeats     []reportRepeat  `json:"repeats,omitempty"`
	Error       string          `json:"error,omitempty"`
}

// reportProblem is an invalid item; index is null outside a JSON array or page.
type reportProblem struct {
	Line   int    `json:"line"`
	Index  *int   `json:"index"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// reportRepeat is an item repeated within the input (dry run).
type reportRepeat struct {
	Line      int    `json:"line"`
	Index     *int   `json:"index"`
	ID        string `json:"id"`
	FirstLine int    `json:"first_line"`
}

func newPublishReport(res publisher.Result, err error) publishReport {
	r := publishReport{
		Published:   res.Published,
		Duplicate:   res.Duplicates,
		Invalid:     res.Invalid,
		DryRun:      res.DryRun,
		Unconfirmed: res.Unconfirmed,
		Problems:    make([]reportProblem, 0, len(res.Problems)),
	}
	if res.DryRun {
		r.Repeated = &res.Repeated
	}
	for _, p := range res.Problems {
		r.Problems = append(r.Problems, reportProblem{Line: p.Pos.Line, Index: indexOf(p.Pos), ID: p.ID, Reason: p.Err.Error()})
	}
	for _, rp := range res.Repeats {
		r.Repeats = append(r.Repeats, reportRepeat{Line: rp.Pos.Line, Index: indexOf(rp.Pos), ID: rp.ID, FirstLine: rp.First.Line})
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

func indexOf(p publisher.Position) *int {
	if p.Index < 0 {
		return nil
	}
	i := p.Index
	return &i
}

// progressReporter shows a publish run while it lasts: a bar redrawn in place when
// stderr is a terminal (and the input is not one, which someone is typing into),
// else a log line every progressLogEvery.
type progressReporter struct {
	w       io.Writer
	bar     bool
	columns int
	log     zerolog.Logger
	drawn   bool
	logged  time.Duration // elapsed time of the last log line
}

func newProgressReporter(e *env, in io.Reader, log zerolog.Logger) *progressReporter {
	r := &progressReporter{w: e.stderr, log: log, columns: defaultColumns}
	if f, ok := in.(*os.File); !ok || !isTerminal(f) {
		r.bar = isTerminal(e.stderr)
	}
	if c, ok := e.lookupEnv("COLUMNS"); ok {
		if n, err := strconv.Atoi(c); err == nil && n > 20 {
			r.columns = n
		}
	}
	return r
}

// report is the Progress callback of PublishAll.
func (r *progressReporter) report(p publisher.Progress) {
	if r.bar {
		switch {
		case p.Done && r.drawn:
			fmt.Fprint(r.w, "\r\033[K") // clear the bar for the summary
		case !p.Done && p.Elapsed >= progressBarDelay:
			fmt.Fprint(r.w, "\r"+renderProgress(p, r.columns-1)+"\033[K")
			r.drawn = true
		}
		return
	}
	if p.Done || p.Elapsed-r.logged < progressLogEvery {
		return
	}
	r.logged = p.Elapsed
	ev := r.log.Info().Int("read", p.Read).Int("invalid", p.Invalid).Int("in_flight", p.InFlight).
		Float64("items_per_second", float64(int(p.Rate()*10))/10)
	if p.DryRun {
		ev = ev.Int("to_publish", p.Published).Int("repeated", p.Repeated)
	} else {
		ev = ev.Int("published", p.Published).Int("duplicate", p.Duplicates)
	}
	if f, ok := p.Fraction(); ok {
		ev = ev.Int("percent", int(f*100))
		if eta, ok := p.ETA(); ok {
			ev = ev.Dur("eta", eta.Round(time.Second))
		}
	}
	ev.Msg("publishing")
}

// renderProgress is the one-line progress bar of a publish run, at most width
// characters: the percentage and a bar when the size of the input is known, the
// counts, the rate, and the ETA (or the time elapsed when the size is unknown).
// To fit, it abbreviates the counts, then drops the bar, then cuts the end.
func renderProgress(p publisher.Progress, width int) string {
	long := fmt.Sprintf("%d read, %d published, %d duplicate, %d invalid | %.0f items/s", p.Read, p.Published, p.Duplicates, p.Invalid, p.Rate())
	short := fmt.Sprintf("%d read %d pub %d dup %d inv | %.0f/s", p.Read, p.Published, p.Duplicates, p.Invalid, p.Rate())
	if p.DryRun {
		long = fmt.Sprintf("%d read, %d to publish, %d repeated, %d invalid | %.0f items/s", p.Read, p.Published, p.Repeated, p.Invalid, p.Rate())
		short = fmt.Sprintf("%d read %d new %d rep %d inv | %.0f/s", p.Read, p.Published, p.Repeated, p.Invalid, p.Rate())
	}
	var candidates []string
	if f, known := p.Fraction(); known {
		when := " | ETA --"
		if eta, ok := p.ETA(); ok {
			when = " | ETA " + shortDuration(eta)
		}
		pct := fmt.Sprintf("%3d%%", int(f*100))
		filled := int(f * progressBarWidth)
		bar := "[" + strings.Repeat("#", filled) + strings.Repeat(".", progressBarWidth-filled) + "]"
		candidates = []string{
			pct + " " + bar + " " + long + when,
			pct + " " + bar + " " + short + when,
			pct + " " + short + when,
		}
	} else {
		when := " | " + shortDuration(p.Elapsed)
		candidates = []string{long + when, short + when}
	}
	for _, c := range candidates {
		if len(c) <= width {
			return c
		}
	}
	return cut(candidates[len(candidates)-1], width)
}

// cut shortens s to width bytes (s is ASCII).
func cut(s string, width int) string {
	if width > 0 && len(s) > width {
		return s[:width]
	}
	return s
}

// shortDuration formats d as 7s, 3m05s or 2h04m.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
