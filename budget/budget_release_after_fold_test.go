package budget

import (
	"context"
	"testing"
	"time"
)

// A replica whose clock is ahead by more than the margin grants g in its slice kA.
// A replica with the right clock folds kA into now+margin (the clamp) and, once its
// clock reaches kA, counts its own (spent) grant in slice kA. Then the first replica
// gives back g, unused: ReleaseGrant must not take the count from slice kA, which holds
// only the other replica's grant (the entry's fold count tells it), or that grant would
// lose its slot and the budget grant one send too many in a window.
func TestReleaseAfterAFoldNeverFreesAnotherReplicasGrant(t *testing.T) {
	ctx := context.Background()
	kv := newMemKV()
	real := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const skew = 5 * time.Second
	const window, margin = 10 * time.Second, 100 * time.Millisecond
	ahead, _ := NewKV(kv, 3, window, WithMargin(margin), WithClock(func() time.Time { return real.Add(skew) }))
	right, _ := NewKV(kv, 3, window, WithMargin(margin), WithClock(func() time.Time { return real }))
	start := real
	var sends []time.Time // real times of the sends made
	acquire := func(b *KV, want int) {
		t.Helper()
		n, err := b.Acquire(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			sends = append(sends, real)
		}
	}

	g, err := ahead.AcquireGrant(ctx, 1) // will not be spent
	if err != nil || g.N != 1 {
		t.Fatal(g, err)
	}
	real = real.Add(10 * time.Millisecond)
	acquire(right, 1) // s1; folds g into now+margin
	real = start.Add(skew)
	acquire(right, 1)                                     // s2, in the slice g was granted in
	if err := ahead.ReleaseGrant(ctx, g, 1); err != nil { // g unused: takes s2 from the slice
		t.Fatal(err)
	}
	real = start.Add(window + margin + 300*time.Millisecond) // s1 and the folded g have expired; s2 must hold until skew+window+margin
	st, _ := right.State(ctx)
	t.Logf("at %s: used %d, but s2 (sent at %s) still holds a slot", real.Sub(start), st.Used, skew)
	acquire(right, 3)
	// count sends in any window of length window+margin
	worst := 0
	for i := range sends {
		c := 0
		for j := i; j < len(sends); j++ {
			if sends[j].Sub(sends[i]) < window+margin {
				c++
			}
		}
		worst = max(worst, c)
	}
	t.Logf("sends at %v", func() (d []time.Duration) {
		for _, s := range sends {
			d = append(d, s.Sub(start))
		}
		return
	}())
	if worst > 3 {
		t.Errorf("%d sends within window+margin, cap 3", worst)
	}
}
