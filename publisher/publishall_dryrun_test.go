package publisher

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/ionix"
)

func TestPublishAllDryRunNeedsNoServer(t *testing.T) {
	v1 := `{"id":"x","title":"T","type":"DNS","urgency":5}`
	v2 := `{"id":"x","title":"T","type":"DNS","urgency":6}`
	input := strings.Join([]string{v1, validPKI, noType, v1, v2, "oops", validPKI}, "\n") + "\n"
	var last Progress
	res, err := New(nil, "").PublishAll(context.Background(), strings.NewReader(input), ionix.EventOpened,
		&PublishAllOptions{DryRun: true, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 3 || res.Repeated != 2 || res.Invalid != 2 || res.Duplicates != 0 || !res.DryRun {
		t.Errorf("result = %+v, want 3 to publish, 2 repeated, 2 invalid", res)
	}
	wantRepeats := []string{
		`line 4 (id "x"): same item and version as line 1`,
		`line 7 (id "b-2"): same item and version as line 2`,
	}
	if len(res.Repeats) != len(wantRepeats) {
		t.Fatalf("repeats = %v", res.Repeats)
	}
	for i, w := range wantRepeats {
		if got := res.Repeats[i].String(); got != w {
			t.Errorf("repeat %d = %q, want %q", i, got, w)
		}
	}
	if !last.Done || !last.DryRun || last.Read != 7 || last.Handled() != 7 {
		t.Errorf("last progress = %+v", last)
	}
}

func TestPublishAllWithoutJetStreamOnlyDryRuns(t *testing.T) {
	_, err := New(nil, "").PublishAll(context.Background(), strings.NewReader(validPKI), ionix.EventOpened, nil)
	if !errors.Is(err, ErrNoJetStream) {
		t.Errorf("err = %v, want ErrNoJetStream", err)
	}
}
