package publisher

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/ionix"
)

func TestPublishAllReportsProgress(t *testing.T) {
	_, js, _ := testStream(t)
	input := ndjsonItems("p", 500) + noType + "\n"
	var reports []Progress
	res, err := New(js, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened, &PublishAllOptions{
		Size: int64(len(input)), Progress: func(p Progress) { reports = append(reports, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	last := reports[len(reports)-1]
	want := Progress{Read: 501, Published: 500, Invalid: 1, BytesRead: int64(len(input)), Size: int64(len(input)), Line: 501, Lines: 501, Done: true}
	last.Elapsed = 0
	if last != want {
		t.Errorf("last report = %+v\nwant          %+v", last, want)
	}
	if res.Published != last.Published || res.Invalid != last.Invalid {
		t.Errorf("result %+v disagrees with the last report", res)
	}
	for _, p := range reports[:len(reports)-1] {
		if p.Done {
			t.Errorf("a report before the last one is marked done: %+v", p)
		}
	}
}

func TestProgressFractionAndETA(t *testing.T) {
	almostDone := maxUnfinished
	tests := []struct {
		name     string
		p        Progress
		fraction float64
		ok       bool
		eta      time.Duration
	}{
		{"size unknown", Progress{BytesRead: 500, Elapsed: time.Second}, 0, false, 0},
		{"by bytes while reading", Progress{BytesRead: 250, Size: 1000, Elapsed: time.Second}, 0.25, true, 3 * time.Second},
		{"by line once read whole", Progress{BytesRead: 1000, Size: 1000, Line: 10, Lines: 40, Elapsed: 2 * time.Second}, 0.25, true, 6 * time.Second},
		{"done", Progress{BytesRead: 1000, Size: 1000, Line: 39, Lines: 40, Done: true, Elapsed: time.Second}, 1, true, 0},
		{"nothing read yet", Progress{Size: 1000, Elapsed: time.Second}, 0, true, 0},
		{"read to the end, not done", Progress{BytesRead: 1000, Size: 1000, Elapsed: time.Second}, almostDone, true, time.Duration(float64(time.Second) * (1 - almostDone) / almostDone)},
		{"more read than the size said", Progress{BytesRead: 2000, Size: 1000, Elapsed: time.Second}, almostDone, true, time.Duration(float64(time.Second) * (1 - almostDone) / almostDone)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := tt.p.Fraction()
			if f != tt.fraction || ok != tt.ok {
				t.Errorf("Fraction() = %v, %v; want %v, %v", f, ok, tt.fraction, tt.ok)
			}
			eta, _ := tt.p.ETA()
			if eta != tt.eta {
				t.Errorf("ETA() = %s, want %s", eta, tt.eta)
			}
		})
	}
}

func TestCountingReaderCountsLines(t *testing.T) {
	tests := []struct {
		input string
		lines int64
	}{
		{"", 0},
		{"a\n", 1},
		{"a\nb", 2},
		{"a\n\nb\n", 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.input), func(t *testing.T) {
			c := newCountingReader(strings.NewReader(tt.input))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatal(err)
			}
			if !c.eof.Load() || c.lines.Load() != tt.lines || c.n.Load() != int64(len(tt.input)) {
				t.Errorf("eof %v, lines %d, bytes %d; want %d lines", c.eof.Load(), c.lines.Load(), c.n.Load(), tt.lines)
			}
		})
	}
}
