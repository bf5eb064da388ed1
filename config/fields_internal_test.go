package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEveryKeyFromEnv sets every key through its environment variable, by
// type, proving the generic mapping covers each key without code of its own.
func TestEveryKeyFromEnv(t *testing.T) {
	for _, lf := range leaves {
		t.Run(lf.key, func(t *testing.T) {
			wantEnv := "IONIXSNOW_" + strings.ToUpper(strings.ReplaceAll(lf.key, ".", "_"))
			if lf.env != wantEnv || EnvName(lf.key) != wantEnv {
				t.Fatalf("env = %s, want %s", lf.env, wantEnv)
			}
			var raw string
			var want any
			switch {
			case lf.typ == durationType:
				raw, want = "1h30m", 90*time.Minute
			case lf.isList():
				raw, want = "a, b", []string{"a", "b"}
			case lf.isMap():
				raw, want = "a=1,b=2", map[string]string{"a": "1", "b": "2"}
			case lf.typ.Kind() == reflect.Int:
				raw, want = "3", 3
			case lf.typ.Kind() == reflect.Float64:
				raw, want = "2.5", 2.5
			case lf.typ.Kind() == reflect.Bool:
				raw, want = "true", true
			default:
				raw, want = "value-of-"+lf.name, "value-of-"+lf.name
			}
			env := func(k string) (string, bool) {
				if k == lf.env {
					return raw, true
				}
				return "", false
			}
			cfg := Default()
			l := &loader{files: map[string]fileRef{}, bad: map[string]bool{}}
			l.loadEnv(env, &cfg)
			if len(l.ps) > 0 {
				t.Fatalf("problems: %v", l.ps)
			}
			if got := lf.field(&cfg).Interface(); !reflect.DeepEqual(got, reflect.ValueOf(want).Convert(lf.typ).Interface()) {
				t.Fatalf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestRank(t *testing.T) {
	order := []string{"f.yaml", "nats", "nats.url", "nats.replicas", "nats.bogus", "servicenow.client_secret_file",
		"servicenow.password", "log.format", "log.nope", "unknownsection"}
	for i := 1; i < len(order); i++ {
		if rank(order[i-1], "f.yaml") >= rank(order[i], "f.yaml") {
			t.Errorf("rank(%s) >= rank(%s)", order[i-1], order[i])
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 5 * time.Minute: "5m", 90 * time.Minute: "1h30m", 30 * time.Second: "30s",
		0: "0s", 1500 * time.Millisecond: "1.5s", 10*time.Hour + 5*time.Second: "10h0m5s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
