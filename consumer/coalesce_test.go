package consumer_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/consumer"
	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/mapping"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestSecondIncidentHaltsSending: on an instance whose transform map does not
// coalesce on correlation_id, the first update of an item makes a second incident;
// the consumer halts all sending as a configuration problem naming coalesce and its
// fix, and makes no further import, however long it waits.
func TestSecondIncidentHaltsSending(t *testing.T) {
	t.Parallel()
	// The cases run at once: each mostly waits, for the halt and then for a post
	// that must not come.
	var cases sync.WaitGroup
	for _, tc := range []struct {
		name string
		opts emulator.Options
		// 3 items and the update that made a second incident; without the field the
		// Table API read cannot tell, and the check posts the item once more.
		imports int
	}{
		{"coalesce not set", emulator.Options{NoCoalesce: true}, 4},
		{"correlation_id not mapped", emulator.Options{UnmappedCorrelationID: true}, 5},
	} {
		cases.Go(func() {
			t.Run(tc.name, func(t *testing.T) {
				r := newRig(t, mapping.Filter{}, tc.opts)
				batch := items("nc", 3)
				r.publish(t, batch...)
				d := r.deps(r.topo.Consumer)
				d.Incidents = r.snow
				o := consumer.Options{Concurrency: 1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond, ProbeInterval: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}
				c := r.run(t, d, o)
				testkit.WaitFor(t, 10*time.Second, "the first versions created", func() bool { return c.Stats().Created == 3 })
				for i := range batch {
					batch[i].Urgency = 9.8
				}
				r.publish(t, batch...)
				testkit.WaitFor(t, 10*time.Second, "sending halted", func() bool { return c.Paused().Paused })
				p := c.Paused()
				if !p.Configuration || !errors.Is(p.Cause, consumer.ErrNoCoalesce) {
					t.Fatalf("paused with %v (configuration %v), want a configuration halt for coalesce", p.Cause, p.Configuration)
				}
				imports := r.sim.ImportCount()
				if imports != tc.imports {
					t.Errorf("%d imports when sending halted, want %d", imports, tc.imports)
				}
				// Many probe intervals later, nothing more was sent.
				time.Sleep(20 * o.MaxBackoff)
				if n := r.sim.ImportCount(); n != imports {
					t.Errorf("%d imports after the halt, want none after the %d", n-imports, imports)
				}
				if n := len(r.sim.Incidents()); n != tc.imports {
					t.Errorf("%d incidents, want %d", n, tc.imports)
				}
			})
		})
	}
	cases.Wait()
}

// TestIncidentDeletedInServiceNowIsMadeAgain: an update of an item whose incident
// an admin deleted makes a new incident (coalesce finds nothing); the Table API shows
// only that one, so sending goes on.
func TestIncidentDeletedInServiceNowIsMadeAgain(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{})
	it := item("deleted-1", "Open Redis on cache.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	r.publish(t, it)
	d := r.deps(r.topo.Consumer)
	d.Incidents = r.snow
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "created", func() bool { return c.Stats().Created == 1 })
	if !r.sim.DeleteIncident(incidentOf(t, r.sim, it.ID).Number) {
		t.Fatal("could not delete the incident")
	}
	it.Urgency = 9.5
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "the update made a new incident", func() bool { return c.Stats().Created == 2 })
	if p := c.Paused(); p.Paused {
		t.Fatalf("paused: %v", p.Cause)
	}
	it.Urgency = 9.9
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "the next update", func() bool { return c.Stats().Updated == 1 })
}

// TestIncidentDeletedWithoutReadAccess: read access to incident is not part of the
// setup (SPEC §5: the Table API read is "never required for sending"). An admin
// deletes an incident; the item's next version makes a new one. The Table API read
// is refused, so the consumer posts the item once more: coalesce makes that an
// update of the new incident, and sending goes on.
func TestIncidentDeletedWithoutReadAccess(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{MissingACLs: []string{emulator.ACLIncidentRead}})
	it := item("deleted-nr-1", "Open Redis on cache.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	r.publish(t, it)
	d := r.deps(r.topo.Consumer)
	d.Incidents = r.snow // as consume wires it
	c := r.run(t, d, consumer.Options{Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "created", func() bool { return c.Stats().Created == 1 })
	if !r.sim.DeleteIncident(incidentOf(t, r.sim, it.ID).Number) {
		t.Fatal("could not delete the incident")
	}
	it.Urgency = 9.5
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "the update made a new incident", func() bool { return c.Stats().Created == 2 })
	r.waitDrained(t)
	if p := c.Paused(); p.Paused {
		t.Fatalf("sending halted although coalesce works (no read access to incident): %v", p.Cause)
	}
}

// TestSecondIncidentHaltsSendingWithoutReadAccess: without read access, the second
// incident's item is posted once more to tell; on an instance without coalesce that
// makes a third, and sending halts.
func TestSecondIncidentHaltsSendingWithoutReadAccess(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{NoCoalesce: true, MissingACLs: []string{emulator.ACLIncidentRead}})
	it := item("nc-nr-1", "Open Redis on cache.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	r.publish(t, it)
	d := r.deps(r.topo.Consumer)
	d.Incidents = r.snow
	c := r.run(t, d, consumer.Options{Concurrency: 1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "created", func() bool { return c.Stats().Created == 1 })
	it.Urgency = 9.5
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "sending halted", func() bool { return c.Paused().Halted })
	if p := c.Paused(); !errors.Is(p.Cause, consumer.ErrNoCoalesce) {
		t.Fatalf("halted with %v, want ErrNoCoalesce", p.Cause)
	}
	if n := len(r.sim.Incidents()); n != 3 {
		t.Errorf("%d incidents, want 3 (the item, its update, the check)", n)
	}
}

// TestHaltOutlivesItsConsumer: a consumer built again with the Halt of one that
// halted (consume after a lost NATS connection) is halted from the start.
func TestHaltOutlivesItsConsumer(t *testing.T) {
	t.Parallel()
	r := newRig(t, mapping.Filter{}, emulator.Options{NoCoalesce: true})
	it := item("halt-1", "Open Redis on cache.example.com", "Vulnerability", 8, "2026-10-01T08:00:00Z")
	r.publish(t, it)
	halt := &consumer.Halt{}
	o := consumer.Options{Concurrency: 1, Mapping: mapping.DefaultOptions(), FetchWait: 200 * time.Millisecond}
	d := r.deps(r.topo.Consumer)
	d.Incidents, d.Halt = r.snow, halt
	first, stop := r.launch(t, d, o)
	testkit.WaitFor(t, 10*time.Second, "created", func() bool { return first.Stats().Created == 1 })
	it.Urgency = 9.5
	r.publish(t, it)
	testkit.WaitFor(t, 10*time.Second, "halted", func() bool { return first.Paused().Halted })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(halt.Cause(), consumer.ErrNoCoalesce) {
		t.Fatalf("the shared halt holds %v", halt.Cause())
	}
	imports := r.sim.ImportCount()
	r.publish(t, item("halt-2", "Exposed admin panel", "Web", 8, "2026-10-01T08:00:00Z"))
	next := r.run(t, d, o)
	if p := next.Paused(); !p.Halted || !errors.Is(p.Cause, consumer.ErrNoCoalesce) {
		t.Fatalf("the consumer built again is not halted: %+v", p)
	}
	if n := r.sim.ImportCount(); n != imports {
		t.Errorf("%d imports by the consumer built again", n-imports)
	}
}
