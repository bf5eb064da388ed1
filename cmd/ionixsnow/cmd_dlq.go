package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/dlq"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

// Layout of the dlq list table.
const (
	// dlqMinReasonWidth is the narrowest the reason column gets, however wide the rest.
	dlqMinReasonWidth = 30
	// dlqMaxIDWidth cuts long action item ids in the table.
	dlqMaxIDWidth = 36
)

// dlqStdinIsTerminal reports whether r is an interactive terminal; a variable so that
// tests can answer the purge prompt.
var dlqStdinIsTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isTerminal(f)
}

const dlqUsage = `Usage: ionixsnow dlq <subcommand> [--config FILE] [flags]

Subcommands:
  list  [--json] [--limit N]            the dead letters, oldest first
  retry (--all | --seq N [--seq M ...]) re-drive dead letters to the action-item stream;
                                        N is the DLQ SEQ column of 'dlq list'
  purge [--yes]                         delete every dead letter

Run 'ionixsnow dlq <subcommand> -h' for its flags.
`

func runDLQ(e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, "ionixsnow dlq: a subcommand is required\n\n"+dlqUsage)
		return exitUsage
	}
	switch args[0] {
	case "list":
		return runDLQList(e, args[1:])
	case "retry":
		return runDLQRetry(e, args[1:])
	case "purge":
		return runDLQPurge(e, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, dlqUsage)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "ionixsnow dlq: unknown subcommand %q\n\n%s", args[0], dlqUsage)
	return exitUsage
}

// dlqSession is a connection to NATS and the dead letters behind it.
type dlqSession struct {
	conn  *natsConn
	dl    *dlq.Queue
	names topology.Names
}

// dlqOpen loads the configuration, connects to NATS and makes sure the
// dead-letter stream (and, for a re-drive, the action-item stream) exists. The
// durable consumer is left alone: its filter belongs to the consume processes.
func (e *env) dlqOpen(ctx context.Context, cmd, cfgPath, tenantArg string, needStream bool) (*dlqSession, int, bool) {
	tid, err := tenant.ParseID(tenantArg)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow %s: --tenant: %v\n", cmd, err)
		return nil, exitUsage, false
	}
	cfg, code, ok := e.loadConfig(cfgPath, config.Needs{})
	if !ok {
		return nil, code, false
	}
	log := newLogger(cfg.Log, e.stderr)
	conn, err := connectNATS(cfg.NATS, log, true)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow %s: %v\n", cmd, err)
		return nil, exitFailed, false
	}
	topo := tenantTopologyOptions(cfg, tid)
	if err := retryWhileStarting(ctx, func(ctx context.Context) error {
		_, err := topology.EnsureDLQ(ctx, conn.js, topo)
		return err
	}); err != nil {
		conn.Close()
		fmt.Fprintf(e.stderr, "ionixsnow %s: %v\n", cmd, err)
		return nil, exitFailed, false
	}
	if needStream {
		if err := retryWhileStarting(ctx, func(ctx context.Context) error {
			_, err := topology.EnsureStream(ctx, conn.js, topo)
			return err
		}); err != nil {
			conn.Close()
			fmt.Fprintf(e.stderr, "ionixsnow %s: %v\n", cmd, err)
			return nil, exitFailed, false
		}
	}
	names := topo.Names.WithDefaults()
	return &dlqSession{conn: conn, dl: dlq.New(conn.js, names), names: names}, 0, true
}

func dlqSignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runDLQList(e *env, args []string) int {
	fs := e.flagSet("dlq list", "[--config FILE] [--json] [--limit N]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	tenantFlag := fs.String("tenant", tenant.Default, "the dead letters of tenant `T` (SPEC §9); default: the single-tenant form's")
	asJSON := fs.Bool("json", false, `print a JSON array of {"stream_seq","subject","id","reason","failed_at","dlq_seq"} with whole reasons`)
	limit := fs.Int("limit", 0, "list at most `N` dead letters, oldest first (0: all)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *limit < 0 {
		fmt.Fprintf(e.stderr, "ionixsnow dlq list: --limit must be 0 (all) or more, not %d\n", *limit)
		fs.Usage()
		return exitUsage
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.dlqOpen(ctx, "dlq list", *cfgPath, *tenantFlag, false)
	if !ok {
		return code
	}
	defer s.conn.Close()

	dls, err := s.dl.List(ctx, *limit)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow dlq list: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		if dls == nil {
			dls = []dlq.Letter{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(dls); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow dlq list: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	if len(dls) == 0 {
		fmt.Fprintln(e.stdout, "no dead letters")
		return exitOK
	}
	total, err := s.dl.Count(ctx)
	if err != nil {
		total = uint64(len(dls))
	}
	dlqPrintTable(e.stdout, dls, e.dlqColumns())
	shown := fmt.Sprintf("%d dead letter%s", len(dls), dlqPlural(len(dls)))
	if uint64(len(dls)) < total {
		shown = fmt.Sprintf("showing %d of %d dead letters (--limit 0 lists all)", len(dls), total)
	}
	fmt.Fprintf(e.stdout, "\n%s. Re-drive with 'ionixsnow dlq retry --seq <DLQ SEQ>' (or --all); whole reasons with --json.\n", shown)
	return exitOK
}

// dlqColumns is the width of the terminal: COLUMNS, else defaultColumns.
func (e *env) dlqColumns() int {
	if c, ok := e.lookupEnv("COLUMNS"); ok {
		if n, err := strconv.Atoi(c); err == nil && n > 20 {
			return n
		}
	}
	return defaultColumns
}

// dlqPrintTable prints the table of dead letters, the reason cut so that a line
// fits in width columns (but never narrower than dlqMinReasonWidth).
func dlqPrintTable(w io.Writer, dls []dlq.Letter, width int) {
	header := []string{"DLQ SEQ", "STREAM SEQ", "FAILED AT (UTC)", "SUBJECT", "ID", "REASON"}
	rows := make([][]string, 0, len(dls))
	for _, d := range dls {
		failed := "-"
		if !d.FailedAt.IsZero() {
			failed = d.FailedAt.UTC().Format(time.DateTime)
		}
		id := d.ID
		if id == "" {
			id = "-"
		}
		rows = append(rows, []string{
			strconv.FormatUint(d.DLQSeq, 10), strconv.FormatUint(d.StreamSeq, 10), failed,
			dlqPrintable(d.Subject), dlqCut(dlqPrintable(id), dlqMaxIDWidth), dlqPrintable(d.Reason),
		})
	}
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r[:len(r)-1] {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	used := 0
	for _, wd := range widths[:len(widths)-1] {
		used += wd + 2
	}
	reasonWidth := max(width-used-1, dlqMinReasonWidth)
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells[:len(cells)-1] {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i < 2 { // numbers right-aligned
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
			b.WriteString("  ")
		}
		b.WriteString(dlqCut(cells[len(cells)-1], reasonWidth))
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
}

// dlqCut shortens s to at most n runes, marking the cut with an ellipsis.
func dlqCut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// dlqPrintable replaces control characters (free-text ids may hold any) with spaces.
func dlqPrintable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func dlqPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// dlqSeqList is a repeatable flag of dead-letter sequences (also comma-separated).
type dlqSeqList []uint64

func (l *dlqSeqList) String() string {
	parts := make([]string, len(*l))
	for i, s := range *l {
		parts[i] = strconv.FormatUint(s, 10)
	}
	return strings.Join(parts, ",")
}

func (l *dlqSeqList) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a dead-letter sequence (a number from the DLQ SEQ column of 'dlq list')", p)
		}
		*l = append(*l, n)
	}
	return nil
}

func runDLQRetry(e *env, args []string) int {
	fs := e.flagSet("dlq retry", "(--all | --seq N [--seq M ...]) [--config FILE]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	tenantFlag := fs.String("tenant", tenant.Default, "the dead letters of tenant `T` (SPEC §9); default: the single-tenant form's")
	all := fs.Bool("all", false, "re-drive every dead letter")
	var seqs dlqSeqList
	fs.Var(&seqs, "seq", "re-drive the dead letter whose DLQ SEQ (the first column of 'dlq list', not the STREAM SEQ) is `N`; repeatable, or N,M,...")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *all == (len(seqs) > 0) {
		fmt.Fprintln(e.stderr, "ionixsnow dlq retry: pass either --all or one or more --seq N")
		fs.Usage()
		return exitUsage
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.dlqOpen(ctx, "dlq retry", *cfgPath, *tenantFlag, true)
	if !ok {
		return code
	}
	defer s.conn.Close()
	if *all {
		return e.dlqRedriveAll(ctx, s)
	}

	failed := 0
	for _, seq := range seqs {
		res, err := s.dl.Redrive(ctx, seq)
		if err != nil {
			failed++
			fmt.Fprintf(e.stderr, "ionixsnow dlq retry: %v\n", err)
			if errors.Is(err, dlq.ErrNotFound) {
				fmt.Fprintln(e.stderr, "  (pass the DLQ SEQ that 'ionixsnow dlq list' shows; a dead letter re-driven or purged is gone)")
			}
			continue
		}
		fmt.Fprintln(e.stdout, dlqDescribe(res))
	}
	if len(seqs) > 1 {
		fmt.Fprintf(e.stdout, "re-drove %d of %d dead letters\n", len(seqs)-failed, len(seqs))
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

// dlqDescribe is the line retry prints for one re-driven dead letter.
func dlqDescribe(r dlq.RedriveResult) string {
	what := fmt.Sprintf("dead letter %d", r.DLQSeq)
	if r.ID != "" {
		what += fmt.Sprintf(" (action item %s, stream seq %d)", dlqPrintable(r.ID), r.StreamSeq)
	} else {
		what += fmt.Sprintf(" (stream seq %d)", r.StreamSeq)
	}
	if r.Duplicate {
		return fmt.Sprintf("re-drove %s: already on %s as stream seq %d from an earlier retry; dead letter removed", what, r.Subject, r.NewSeq)
	}
	return fmt.Sprintf("re-drove %s to %s as stream seq %d", what, r.Subject, r.NewSeq)
}

// dlqRedriveAll re-drives every dead letter, with a progress line on a terminal.
func (e *env) dlqRedriveAll(ctx context.Context, s *dlqSession) int {
	bar := isTerminal(e.stderr)
	n, err := s.dl.RedriveAll(ctx, func(done, total int) {
		if bar {
			fmt.Fprintf(e.stderr, "\rre-driving %d/%d\033[K", done, total)
		}
	})
	if bar {
		fmt.Fprint(e.stderr, "\r\033[K")
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "ionixsnow dlq retry: %s\n", line)
		}
	}
	switch {
	case n == 0 && err == nil:
		fmt.Fprintln(e.stdout, "no dead letters to re-drive")
	default:
		fmt.Fprintf(e.stdout, "re-drove %d dead letter%s to %s\n", n, dlqPlural(n), s.names.Stream)
	}
	if err != nil {
		if left, cerr := s.dl.Count(ctx); cerr == nil {
			fmt.Fprintf(e.stdout, "%d left in %s\n", left, s.names.DLQStream)
		}
		return exitFailed
	}
	return exitOK
}

func runDLQPurge(e *env, args []string) int {
	fs := e.flagSet("dlq purge", "[--yes] [--config FILE]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	tenantFlag := fs.String("tenant", tenant.Default, "the dead letters of tenant `T` (SPEC §9); default: the single-tenant form's")
	yes := fs.Bool("yes", false, "purge without asking (required when stdin is not a terminal)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	interactive := dlqStdinIsTerminal(e.stdin)
	if !*yes && !interactive {
		fmt.Fprintln(e.stderr, "ionixsnow dlq purge: stdin is not a terminal to confirm on; pass --yes to purge every dead letter")
		return exitUsage
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.dlqOpen(ctx, "dlq purge", *cfgPath, *tenantFlag, false)
	if !ok {
		return code
	}
	defer s.conn.Close()

	count, err := s.dl.Count(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow dlq purge: %v\n", err)
		return exitFailed
	}
	if count == 0 {
		fmt.Fprintln(e.stdout, "no dead letters")
		return exitOK
	}
	if !*yes {
		fmt.Fprintf(e.stderr, "purge %d dead letter%s? [y/N] ", count, dlqPlural(int(count)))
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stdout, "nothing purged")
			return exitOK
		}
	}
	n, err := s.dl.Purge(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow dlq purge: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "purged %d dead letter%s\n", n, dlqPlural(int(n)))
	return exitOK
}
