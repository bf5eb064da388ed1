package publisher

import (
	"bytes"
	"io"
	"sync/atomic"
	"time"
)

// Progress is a snapshot of a PublishAll run, for progress reports.
type Progress struct {
	Read       int // items read from the input, valid or not
	Published  int // stored by the stream (in a dry run: would be published)
	Duplicates int // already in the stream
	Invalid    int
	Repeated   int // dry run: repeated within the input
	InFlight   int // sent, acknowledgement awaited
	DryRun     bool

	BytesRead int64 // bytes consumed from the input so far
	Size      int64 // size of the input (PublishAllOptions.Size); 0 when unknown
	Line      int   // line of the last item read
	Lines     int   // lines in the whole input once it was read to its end; 0 before

	Elapsed time.Duration
	Done    bool // the last report: PublishAll is returning
}

// Handled counts the items done with: acknowledged, found invalid or repeated.
func (p Progress) Handled() int {
	return p.Published + p.Duplicates + p.Invalid + p.Repeated
}

// Rate is the number of items handled per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Handled()) / p.Elapsed.Seconds()
}

// Fraction tells how far through the input the run is, from 0 to 1 (1 only once
// Done); ok is false when the size of the input is unknown. Until the input has
// been read to its end it goes by bytes read; after that (a document is read whole
// before its items are published) by the line of the item reached.
func (p Progress) Fraction() (f float64, ok bool) {
	if p.Size <= 0 {
		return 0, false
	}
	switch {
	case p.Done:
		return 1, true
	case p.Lines > 0:
		f = float64(p.Line) / float64(p.Lines)
	default:
		f = float64(p.BytesRead) / float64(p.Size)
	}
	return min(max(f, 0), maxUnfinished), true
}

// maxUnfinished is the largest Fraction of a run that is not done.
const maxUnfinished = 0.999

// ETA estimates the time left from Fraction; ok is false when it cannot tell.
func (p Progress) ETA() (time.Duration, bool) {
	f, ok := p.Fraction()
	if !ok || f <= 0 || p.Elapsed <= 0 {
		return 0, false
	}
	return time.Duration(float64(p.Elapsed) * (1 - f) / f), true
}

// startProgress reports progress every ProgressInterval until the returned
// function is called, which makes the last (Done) report.
func (b *batch) startProgress() (stop func()) {
	if b.o.Progress == nil {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(b.o.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.o.Progress(b.snapshot(false))
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
		b.o.Progress(b.snapshot(true))
	}
}

func (b *batch) snapshot(done bool) Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := Progress{
		Read:       b.read,
		Published:  b.res.Published,
		Duplicates: b.res.Duplicates,
		Invalid:    b.res.Invalid,
		Repeated:   b.res.Repeated,
		InFlight:   len(b.sem),
		DryRun:     b.o.DryRun,
		BytesRead:  b.in.n.Load(),
		Size:       b.o.Size,
		Line:       b.line,
		Elapsed:    time.Since(b.started),
		Done:       done,
	}
	if b.in.eof.Load() {
		p.Lines = int(b.in.lines.Load())
		p.Line = min(p.Line, p.Lines)
	}
	return p
}

// countingReader counts the bytes and lines read through it, for progress reports
// made from another goroutine.
type countingReader struct {
	r       io.Reader
	n       atomic.Int64
	lines   atomic.Int64 // newlines, plus one for a last line without its newline once at EOF
	eof     atomic.Bool
	partial bool // the last byte read was not a newline
}

func newCountingReader(r io.Reader) *countingReader { return &countingReader{r: r} }

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		c.lines.Add(int64(bytes.Count(p[:n], []byte{'\n'})))
		c.partial = p[n-1] != '\n'
	}
	if err == io.EOF && !c.eof.Load() {
		if c.partial {
			c.lines.Add(1)
		}
		c.eof.Store(true)
	}
	return n, err
}
