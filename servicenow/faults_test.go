package servicenow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

// TestNoRequestBeforeRetryAfter: several goroutines import through one
// client against a rate limit rule with a one-second window; after every
// 429 nothing but requests already in flight (one per other worker) reaches
// the instance before the Retry-After instant.
func TestNoRequestBeforeRetryAfter(t *testing.T) {
	const workers, perWorker = 4, 3
	e := newEnv(t, emulator.Options{Now: time.Now, RateLimit: emulator.RateLimit{Requests: 4, Window: emulator.Duration(time.Second)}})
	c := e.client(e.config())
	var wg sync.WaitGroup
	var pausedSeen sync.Once
	sawPause := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				for attempt := 0; ; attempt++ {
					_, err := c.Import(t.Context(), record(fmt.Sprintf("ionix:%d-%d", w, i)))
					if err == nil {
						break
					}
					var se *Error
					if !errors.As(err, &se) || se.Class != ClassTransient || se.StatusCode != 429 || se.RetryAfter <= 0 {
						t.Errorf("import: %v", err)
						return
					}
					if !c.PausedUntil().IsZero() {
						pausedSeen.Do(func() { close(sawPause) })
					}
					if attempt > 20 {
						t.Error("too many attempts")
						return
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-sawPause:
	default:
		t.Error("PausedUntil was never set after a 429")
	}
	if n := len(e.emu.Incidents()); n != workers*perWorker {
		t.Errorf("%d incidents, want %d", n, workers*perWorker)
	}
	reqs := e.emu.Requests()
	limited := 0
	for _, r := range reqs {
		if r.Status != http.StatusTooManyRequests {
			continue
		}
		limited++
		resume := r.At.Add(time.Duration(r.RetryAfter) * time.Second)
		inFlight := 0
		for _, later := range reqs { // the log is in order of completion: compare arrival times
			if !later.At.After(r.At) || !later.At.Before(resume) {
				continue
			}
			// Only requests sent before the client saw this 429 may
			// arrive before its Retry-After instant: at most one per
			// other worker. (Their status says nothing: the window may
			// free a slot the moment after the 429.)
			inFlight++
		}
		if inFlight > workers-1 {
			t.Errorf("%d requests arrived after the 429 at %v and before its Retry-After instant %v: more than the %d that can have been in flight",
				inFlight, r.At.Format("15:04:05.000"), resume.Format("15:04:05.000"), workers-1)
		}
	}
	if limited == 0 {
		t.Fatal("no 429: the rule did not apply")
	}
	if rl := c.RateLimit(); rl.Limit != 4 || rl.Rule == "" || rl.Reset.IsZero() || rl.SeenAt.IsZero() {
		t.Errorf("RateLimit() = %+v", rl)
	}
	t.Logf("%d requests, %d answered 429", len(reqs), limited)
}

// TestPauseHoldsTokenRequestsAndHonoursContext: after a 429 the client
// sends nothing, token requests included, and a waiting request gives up
// with its context.
func TestPauseHoldsTokenRequestsAndHonoursContext(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.setStub(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.Header().Set("X-RateLimit-Limit", "100")
		writeJSON(w, http.StatusTooManyRequests, `{"error":{"message":"Too Many Requests","detail":"x"},"status":"failure"}`)
	})
	c := e.client(e.config())
	_, err := c.Import(t.Context(), record("ionix:1"))
	var se *Error
	if !errors.As(err, &se) || se.Class != ClassTransient || se.RetryAfter != time.Hour {
		t.Fatalf("Import: %v", err)
	}
	until := c.PausedUntil()
	if d := time.Until(until); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("PausedUntil in %v", d)
	}
	before := len(e.emu.Requests())
	for _, call := range []struct {
		name string
		f    func(ctx context.Context) error
	}{
		{"import", func(ctx context.Context) error { _, err := c.Import(ctx, record("ionix:2")); return err }},
		{"authenticate", c.Authenticate},
		{"probe", c.Probe},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		err := call.f(ctx)
		cancel()
		if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while paused: %v", call.name, err)
		}
	}
	if n := len(e.emu.Requests()); n != before {
		t.Errorf("%d requests sent while paused", n-before)
	}
}

// TestTokenExpiryMidRun: with a short access token lifetime on one clock,
// concurrent imports keep succeeding across the expiry with one renewal.
func TestTokenExpiryMidRun(t *testing.T) {
	for _, clientKnows := range []bool{true, false} {
		t.Run(fmt.Sprint("client clock moves: ", clientKnows), func(t *testing.T) {
			e := newEnv(t, emulator.Options{AccessTokenTTL: 2 * time.Minute})
			clk := e.clock.Now
			if !clientKnows {
				clk = testkit.NewClock(clockStart).Now // the client learns of the expiry from a 401
			}
			c := e.client(e.config(), WithClock(clk))
			batch := func(n int) {
				var wg sync.WaitGroup
				for i := range 8 {
					wg.Go(func() {
						if _, err := c.Import(t.Context(), record(fmt.Sprintf("ionix:%d-%d", n, i))); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
			}
			batch(0)
			e.clock.Advance(2 * time.Minute)
			batch(1)
			batch(2)
			if got, want := e.grants(), []string{"password:200", "refresh_token:200"}; !slices.Equal(got, want) {
				t.Errorf("grants = %v, want %v", got, want)
			}
			if n := len(e.emu.Incidents()); n != 24 {
				t.Errorf("%d incidents", n)
			}
		})
	}
}

// TestEmulatorFaultClasses maps every fault switch of the emulator to the
// class and fix of the client's error.
func TestEmulatorFaultClasses(t *testing.T) {
	tests := []struct {
		name      string
		opts      emulator.Options
		table     string
		op        func(e *env, c *Client, ctx context.Context) error
		want      Class
		status    int
		fix       string
		msg       string
		retryFrom time.Duration // RetryAfter at least
	}{
		{"role import_transformer missing", emulator.Options{Roles: []string{emulator.RoleIntegration}}, "", importOp,
			ClassConfiguration, 403, fixImportRoles, "User Not Authorized: Failed API level ACL Validation", 0},
		{"role ionix_integration missing", emulator.Options{Roles: []string{emulator.RoleImportTransformer}}, "", importOp,
			ClassConfiguration, 403, fixImportACL, "Operation Failed: ACL Exception Insert Failed due to security constraints", 0},
		{"create ACL missing", emulator.Options{MissingACLs: []string{emulator.ACLCreate}}, "", importOp,
			ClassConfiguration, 403, fixImportACL, "", 0},
		{"write ACL missing", emulator.Options{MissingACLs: []string{emulator.ACLWrite}}, "", importOp,
			ClassConfiguration, 403, fixImportACL, "Operation Failed: ACL Exception Update Failed due to security constraints", 0},
		{"incident read denied", emulator.Options{MissingACLs: []string{emulator.ACLIncidentRead}}, "", findOp,
			ClassConfiguration, 403, fixReadForbidden, "Insufficient rights to query records: Field(s) present in the query do not have permission to be read", 0},
		{"unknown table", emulator.Options{}, "u_other", importOp,
			ClassConfiguration, 404, fixImportTable, "Invalid table u_other", 0},
		{"hibernating", emulator.Options{Hibernating: true}, "", importOp, ClassTransient, 200, "", "hibernating", 0},
		{"hibernating, token held", emulator.Options{}, "", func(e *env, c *Client, ctx context.Context) error {
			if err := c.Authenticate(ctx); err != nil {
				return err
			}
			cfg := e.emu.Config()
			cfg.Hibernating = true
			if err := e.emu.SetConfig(cfg); err != nil {
				return err
			}
			return importOp(e, c, ctx)
		}, ClassTransient, 200, "", MsgHibernating, 0},
		{"rate limited", emulator.Options{RateLimit: emulator.RateLimit{Requests: 1, Window: emulator.Duration(time.Hour)}}, "",
			func(e *env, c *Client, ctx context.Context) error {
				_ = importOp(e, c, ctx)
				return importOp(e, c, ctx)
			},
			ClassTransient, 429, "", "Too Many Requests", 59 * time.Minute},
		{"outage 503", emulator.Options{Outage: emulator.Outage{Mode: emulator.Outage503}}, "", importOp,
			ClassTransient, 503, "", "", 0},
		{"outage reset", emulator.Options{Outage: emulator.Outage{Mode: emulator.OutageReset}}, "", importOp,
			ClassTransient, 0, "", "", 0},
		{"error rate 500", emulator.Options{ErrorRate: 1}, "", importOp, ClassTransient, 500, "", "Internal Server Error", 0},
		{"error rate 503", emulator.Options{ErrorRate: 1, ErrorStatus: 503}, "", importOp, ClassTransient, 503, "", "", 0},
		{"dropped after commit", emulator.Options{DropResponses: 1}, "", importOp, ClassTransient, 0, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			cfg := e.config()
			cfg.ImportTable = tt.table
			c := e.client(cfg, WithClock(e.clock.Now))
			// Emulator time stands still; the client's pause runs on the
			// wall clock and is not reached here.
			err := tt.op(e, c, t.Context())
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if se.Class != tt.want || se.StatusCode != tt.status || se.Fix != tt.fix || se.RetryAfter < tt.retryFrom {
				t.Errorf("error = %#v", se)
			}
			if tt.msg != "" && !strings.Contains(se.Message, tt.msg) {
				t.Errorf("message %q does not say %q", se.Message, tt.msg)
			}
		})
	}
}

func importOp(_ *env, c *Client, ctx context.Context) error {
	_, err := c.Import(ctx, record("ionix:1"))
	return err
}

func findOp(e *env, c *Client, ctx context.Context) error {
	if err := importOp(e, c, ctx); err != nil {
		return err
	}
	_, err := c.FindIncidents(ctx, "ionix:1")
	return err
}

// TestDroppedResponseRetry: a response dropped after commit is transient,
// and the retry updates the same incident thanks to coalesce.
func TestDroppedResponseRetry(t *testing.T) {
	e := newEnv(t, emulator.Options{DropResponses: 1})
	c := e.client(e.config())
	_, err := c.Import(t.Context(), record("ionix:1"))
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("dropped response: %v", err)
	}
	res, err := c.Import(t.Context(), record("ionix:1"))
	if err != nil || res.Status != "updated" || res.Number != "INC0010001" {
		t.Fatalf("retry: %+v %v", res, err)
	}
	if incs := e.emu.Incidents(); len(incs) != 1 || incs[0].Inserts != 1 || incs[0].Updates != 1 {
		t.Errorf("incidents = %+v", incs)
	}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name   string
		opts   emulator.Options
		table  string
		want   Class
		status int
		fix    string
		msg    string
	}{
		{"set up", emulator.Options{}, "", ClassSuccess, 0, "", ""},
		{"create ACL missing: not visible without an insert", emulator.Options{MissingACLs: []string{emulator.ACLCreate, emulator.ACLWrite}}, "", ClassSuccess, 0, "", ""},
		{"no read access needed", emulator.Options{MissingACLs: []string{emulator.ACLIncidentRead, emulator.ACLDictionaryRead}}, "", ClassSuccess, 0, "", ""},
		{"role import_transformer missing", emulator.Options{Roles: []string{emulator.RoleIntegration}}, "", ClassConfiguration, 403, fixImportRoles, "User Not Authorized"},
		{"unknown table", emulator.Options{}, "u_other", ClassConfiguration, 404, fixImportTable, "Invalid table u_other"},
		{"hibernating", emulator.Options{Hibernating: true}, "", ClassTransient, 200, "", "hibernating"},
		{"outage", emulator.Options{Outage: emulator.Outage{Mode: emulator.Outage503}}, "", ClassTransient, 503, "", ""},
		{"outage reset", emulator.Options{Outage: emulator.Outage{Mode: emulator.OutageReset}}, "", ClassTransient, 0, "", ""},
		{"wrong password", emulator.Options{Password: "other-" + testPassword}, "", ClassConfiguration, 401, fixClientCredentials + "; " + fixPassword, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			cfg := e.config()
			cfg.ImportTable = tt.table
			c := e.client(cfg)
			err := c.Probe(t.Context())
			if got := ErrorClass(err); got != tt.want {
				t.Fatalf("Probe: %v, want class %v", err, tt.want)
			}
			if n := len(e.emu.Incidents()); n != 0 || e.emu.ImportCount() != 0 {
				t.Errorf("the probe imported: %d incidents, ImportCount %d", n, e.emu.ImportCount())
			}
			if err == nil {
				return
			}
			var se *Error
			errors.As(err, &se)
			if se.StatusCode != tt.status || se.Fix != tt.fix || !strings.Contains(se.Message, tt.msg) {
				t.Errorf("error = %#v", se)
			}
		})
	}
	t.Run("answers", func(t *testing.T) {
		for _, tt := range []struct {
			status int
			body   string
			want   Class
			fix    string
		}{
			{200, `{"import_set":"ISET0010001","result":[]}`, ClassSuccess, ""},
			{404, `{"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"}`, ClassSuccess, ""},
			{404, `not json`, ClassConfiguration, fixImportTable},
			{400, `{"error":{"message":"Bad request"},"status":"failure"}`, ClassConfiguration, fixURL},
			{429, `{}`, ClassTransient, ""},
		} {
			e := newEnv(t, emulator.Options{})
			e.setStub(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/api/now/import/u_ionix_action_item/"+probeSysID {
					t.Errorf("probe sent %s %s", r.Method, r.URL)
				}
				w.Header().Set("Retry-After", "1")
				writeJSON(w, tt.status, tt.body)
			})
			err := e.client(e.config()).Probe(t.Context())
			var se *Error
			if ErrorClass(err) != tt.want || (err != nil && (!errors.As(err, &se) || se.Fix != tt.fix || se.Op != OpProbe)) {
				t.Errorf("%d %s: %#v", tt.status, tt.body, err)
			}
		}
	})
}
