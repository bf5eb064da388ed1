package backlog_test

import (
	"testing"

	"github.com/ionix/ionixsnow/backlog"
)

func TestBandOf(t *testing.T) {
	for _, tc := range []struct {
		urgency float64
		want    backlog.Band
	}{{10, backlog.High}, {9.0, backlog.High}, {8.99, backlog.Medium}, {7.0, backlog.Medium}, {6.99, backlog.Low}, {0, backlog.Low}} {
		if got := backlog.BandOf(tc.urgency); got != tc.want {
			t.Errorf("BandOf(%g) = %v, want %v", tc.urgency, got, tc.want)
		}
	}
}

func TestIndexGivesTheOldestOfTheMostUrgentBand(t *testing.T) {
	ix := backlog.NewIndex()
	changed := ix.Changed()
	ix.Add(5, backlog.Low)
	select {
	case <-changed:
		t.Fatal("Changed closed by a Low item, which the express lane does not wait for")
	default:
	}
	ix.Add(9, backlog.Medium)
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by a Medium item")
	}
	ix.Add(7, backlog.Medium)
	ix.Add(12, backlog.High)
	ix.Add(12, backlog.High) // twice: once
	if got := ix.Counts(); got != [3]int{1, 2, 1} {
		t.Errorf("counts %v, want [1 2 1]", got)
	}
	for _, tc := range []struct {
		upTo     backlog.Band
		seq      uint64
		band     backlog.Band
		ok       bool
		settle   func()
		scenario string
	}{
		{backlog.High, 12, backlog.High, true, nil, "High first"},
		{backlog.Medium, 12, backlog.High, true, func() { ix.Done(12) }, "High before Medium"},
		{backlog.High, 0, backlog.Low, false, nil, "no High left"},
		{backlog.Medium, 7, backlog.Medium, true, func() { ix.Settled(8) }, "Medium in stream order"},
		{backlog.Medium, 9, backlog.Medium, true, func() { ix.Done(9) }, "the floor removed 5 and 7"},
		{backlog.Low, 0, backlog.Low, false, nil, "all settled"},
	} {
		seq, band, ok := ix.First(tc.upTo)
		if seq != tc.seq || band != tc.band || ok != tc.ok {
			t.Errorf("%s: First(%v) = %d %v %v, want %d %v %v", tc.scenario, tc.upTo, seq, band, ok, tc.seq, tc.band, tc.ok)
		}
		if tc.settle != nil {
			tc.settle()
		}
	}
	ix.Add(3, backlog.High) // below the floor: settled already
	if _, _, ok := ix.First(backlog.Low); ok {
		t.Error("a sequence below the floor was added")
	}
}

func TestIndexTakeAndReturn(t *testing.T) {
	ix := backlog.NewIndex()
	ix.Add(4, backlog.High)
	ix.Add(6, backlog.High)
	ix.Take(4, backlog.High)
	if seq, _, _ := ix.First(backlog.Medium); seq != 6 {
		t.Errorf("First skips the taken one: got %d, want 6", seq)
	}
	if got := ix.Counts(); got != [3]int{2, 0, 0} {
		t.Errorf("counts %v: the one being sent still counts", got)
	}
	ix.Return(4)
	if seq, _, _ := ix.First(backlog.Medium); seq != 4 {
		t.Errorf("after Return: First %d, want 4 again", seq)
	}
	ix.Take(4, backlog.High)
	ix.Done(4)
	ix.Add(4, backlog.High) // read again before the floor passed it: pending again
	ix.Take(6, backlog.High)
	ix.Settled(6)
	ix.Return(6) // settled meanwhile: not back
	if got := ix.Counts(); got != [3]int{} {
		t.Errorf("counts %v after the floor passed, want none", got)
	}
}
