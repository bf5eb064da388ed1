package monitoring

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

func TestReadyzFollowsTheChecks(t *testing.T) {
	var paused atomic.Bool
	s := New(zerolog.Nop(),
		Check{Name: "nats", Err: func() error { return nil }},
		Check{Name: "sending", Err: func() error {
			if paused.Load() {
				return errors.New("paused: 403 from ServiceNow")
			}
			return nil
		}})
	ts := httptest.NewServer(s)
	defer ts.Close()

	get := func(path string) (int, status) {
		t.Helper()
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, st
	}
	for _, tt := range []struct {
		name      string
		paused    bool
		wantReady int
	}{{"all checks pass", false, 200}, {"paused by configuration", true, 503}, {"fixed again", false, 200}} {
		t.Run(tt.name, func(t *testing.T) {
			paused.Store(tt.paused)
			if code, _ := get("/healthz"); code != 200 {
				t.Errorf("/healthz = %d, want 200 whatever the checks say", code)
			}
			code, st := get("/readyz")
			if code != tt.wantReady {
				t.Errorf("/readyz = %d (%+v), want %d", code, st, tt.wantReady)
			}
			if tt.paused && st.Checks["sending"] == "ok" {
				t.Errorf("the failing check is not named: %+v", st)
			}
		})
	}
}
