package fairshare_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/fairshare"
	"github.com/ionix/ionixsnow/internal/testkit"
)

// queue makes each party wait for slots in the given order (one letter a waiter), all
// while every slot is held, and returns the order in which they are granted as the
// held slots are freed one by one.
func queue(t *testing.T, slots int, waiters string) string {
	t.Helper()
	p := fairshare.New(slots)
	holder := p.For("holder")
	var held []func()
	for range slots {
		r, err := holder.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	shares := map[rune]*fairshare.Share{}
	type grant struct {
		who     rune
		release func()
	}
	granted := make(chan grant, len(waiters))
	waiting := 0
	for _, who := range waiters {
		s := shares[who]
		if s == nil {
			s = p.For(string(who))
			shares[who] = s
		}
		waiting++
		go func() {
			r, err := s.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			granted <- grant{who, r}
		}()
		// Each waiter queued before the next, so the order asked is the order given.
		testkit.WaitFor(t, 5*time.Second, "the waiter queued", func() bool { return p.Waiting() == waiting })
	}
	var order strings.Builder
	for i := 0; i < len(held); i++ {
		held[i]()
		g := <-granted
		order.WriteRune(g.who)
		held = append(held, g.release) // freed in turn later
		if order.Len() == len(waiters) {
			break
		}
	}
	return order.String()
}

func TestSlotsGoRoundRobinAmongWaitingParties(t *testing.T) {
	for _, tc := range []struct {
		name    string
		slots   int
		waiters string // in the order they ask
		want    string // the order they are granted
	}{
		{"one party keeps its order", 1, "aaaa", "aaaa"},
		{"a backlog does not queue a party that asked later", 1, "aaaaab", "abaaaa"},
		{"three parties take turns", 1, "aaaaabccc", "abcacacaa"},
		{"turns go on where they were after a party leaves", 1, "abbbcc", "abcbcb"},
		{"several slots", 2, "aaaab", "abaaa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := queue(t, tc.slots, tc.waiters); got != tc.want {
				t.Errorf("granted in the order %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAFreeSlotIsTakenAtOnce(t *testing.T) {
	p := fairshare.New(2)
	a, b := p.For("a"), p.For("b")
	ra, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.Held() != 1 || b.Held() != 1 {
		t.Errorf("held %d and %d, want 1 and 1", a.Held(), b.Held())
	}
	ra()
	ra() // a second call frees nothing more
	rb()
	if a.Held() != 0 || b.Held() != 0 || p.Free() != 2 {
		t.Errorf("after release: held %d and %d, %d free; want 0, 0, 2", a.Held(), b.Held(), p.Free())
	}
}

func TestAWaiterThatGivesUpHoldsNothing(t *testing.T) {
	p := fairshare.New(1)
	a, b, c := p.For("a"), p.For("b"), p.For("c")
	ra, _ := a.Acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx)
		gaveUp <- err
	}()
	testkit.WaitFor(t, 5*time.Second, "b waiting", func() bool { return p.Waiting() == 1 })
	granted := make(chan func(), 1)
	go func() {
		r, _ := c.Acquire(context.Background())
		granted <- r
	}()
	testkit.WaitFor(t, 5*time.Second, "c waiting", func() bool { return p.Waiting() == 2 })
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("Acquire returned no error when its context ended")
	}
	ra()
	rc := <-granted // the slot goes to c, not to the waiter that left
	if b.Held() != 0 || c.Held() != 1 {
		t.Errorf("b holds %d, c %d; want 0 and 1", b.Held(), c.Held())
	}
	rc()
	if p.Free() != 1 || p.Waiting() != 0 {
		t.Errorf("%d free, %d waiting at the end; want 1 and 0", p.Free(), p.Waiting())
	}
}

// TestNeverMoreThanTheSlotsAreHeld: many parties taking and freeing slots at once
// (each release called twice), some giving up before or while they wait — their
// contexts ended by another goroutine, racing the grant — never hold more than the
// pool has, and at the end every slot is free again.
func TestNeverMoreThanTheSlotsAreHeld(t *testing.T) {
	const slots = 3
	p := fairshare.New(slots)
	var inUse, most atomic.Int64
	var wg sync.WaitGroup
	for party := range 8 {
		s := p.For(string(rune('a' + party)))
		for w := range 4 {
			wg.Go(func() {
				for i := range 200 {
					ctx, cancel := context.WithCancel(context.Background())
					switch (i + w) % 7 {
					case 0:
						cancel() // gives up before asking
					case 1:
						go cancel() // gives up while waiting, or as it is granted
					}
					release, err := s.Acquire(ctx)
					if err == nil {
						n := inUse.Add(1)
						for {
							m := most.Load()
							if n <= m || most.CompareAndSwap(m, n) {
								break
							}
						}
						inUse.Add(-1)
						release()
						release()
					}
					cancel()
				}
			})
		}
	}
	wg.Wait()
	if most.Load() > slots {
		t.Errorf("%d slots held at once, the pool has %d", most.Load(), slots)
	}
	if p.Free() != slots || p.Waiting() != 0 {
		t.Errorf("%d free, %d waiting at the end; want %d and 0", p.Free(), p.Waiting(), slots)
	}
}

func TestAnEndedContextGetsNoSlot(t *testing.T) {
	p := fairshare.New(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.For("a").Acquire(ctx); err == nil {
		t.Error("Acquire with an ended context took a slot")
	}
	if p.Free() != 1 {
		t.Errorf("%d free, want 1", p.Free())
	}
}
