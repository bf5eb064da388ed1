package ionixapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/internal/testkit"
	"github.com/ionix/ionixsnow/ionixapi"
	"github.com/ionix/ionixsnow/ionixapi/ionixsim"
)

// Test credentials: distinct, so that a leak is visible.
const (
	testToken   = "t0ken-S3CRET+value/x"
	testAccount = "acme-corp"
)

// env is the emulator behind an httptest server and a log that records
// everything down to trace level.
type env struct {
	t    *testing.T
	sim  *ionixsim.Server
	srv  *httptest.Server
	logs *testkit.Buffer
}

func newEnv(t *testing.T, o ionixsim.Options) *env {
	t.Helper()
	if o.Token == "" {
		o.Token = testToken
	}
	if o.Account == "" {
		o.Account = testAccount
	}
	sim := ionixsim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv, logs: &testkit.Buffer{}}
}

// config is a working configuration with fast retries.
func (e *env) config() ionixapi.Config {
	return ionixapi.Config{
		BaseURL:    e.srv.URL,
		Token:      testToken,
		Account:    testAccount,
		Timeout:    5 * time.Second,
		MaxBackoff: 5 * time.Millisecond,
	}
}

func (e *env) client(cfg ionixapi.Config) *ionixapi.Client {
	e.t.Helper()
	return newClient(e.t, cfg, e.logs)
}

func newClient(t *testing.T, cfg ionixapi.Config, logs *testkit.Buffer) *ionixapi.Client {
	t.Helper()
	c, err := ionixapi.New(cfg, zerolog.New(logs).Level(zerolog.TraceLevel))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// items returns n items with ids AI-0001.. in order.
func items(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = ionixsim.Item(fmt.Sprintf("AI-%04d", i+1), fmt.Sprintf("Finding %d", i+1), "Vulnerability", float64(i%11))
	}
	return out
}

// collect walks list and returns what fn saw.
func collect(t *testing.T, c *ionixapi.Client, list ionixapi.List) ([]json.RawMessage, ionixapi.Stats, error) {
	t.Helper()
	var got []json.RawMessage
	st, err := c.Each(t.Context(), list, func(item json.RawMessage) error {
		got = append(got, item)
		return nil
	})
	return got, st, err
}

// sameItems fails the test unless got is want, byte for byte.
func sameItems(t *testing.T, got, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d items, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("item %d:\n got  %s\n want %s", i, got[i], want[i])
		}
	}
}

// offsets returns the offset (and limit) query of every request, as
// "offset/limit".
func offsets(reqs []ionixsim.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Query.Get("offset") + "/" + r.Query.Get("limit")
	}
	return out
}

// statuses returns the status of every request.
func statuses(reqs []ionixsim.Request) []int {
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r.Status
	}
	return out
}

// noSecret fails the test if text holds the token in any form.
func noSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, form := range []string{testToken, strings.ReplaceAll(strings.ReplaceAll(testToken, "+", "%2B"), "/", "%2F"), "t0ken-S3CRET"} {
		if strings.Contains(text, form) {
			t.Errorf("%s contains the token (%q): %s", what, form, text)
		}
	}
}

func zerologNop() zerolog.Logger { return zerolog.Nop() }

// t0 is the context of examples.
func t0() context.Context { return context.Background() }
