package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/config"
)

// TestSecretFileSizeLimit: a secret file is read at most MaxSecretFileSize
// bytes; beyond that it is a problem naming the key, found without reading the
// whole file (/dev/zero never ends).
func TestSecretFileSizeLimit(t *testing.T) {
	const secret = "Zk3-secret-in-a-file"
	sized := func(n int) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte(secret+strings.Repeat("x", n-len(secret))), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		problem bool
	}{
		{"exactly the limit", sized(config.MaxSecretFileSize), false},
		{"one byte over", sized(config.MaxSecretFileSize + 1), true},
		{"a device that never ends", "/dev/zero", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.path); err != nil {
				t.Skip(err)
			}
			start := time.Now()
			cfg, _, err := config.LoadEnviron("", []string{"IONIXSNOW_IONIX_TOKEN_FILE=" + tt.path}, config.Needs{})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("loading took %s", d)
			}
			if !tt.problem {
				if err != nil || !strings.HasPrefix(cfg.IONIX.Token, secret) {
					t.Fatalf("LoadEnviron = %v; token of %d bytes", err, len(cfg.IONIX.Token))
				}
				return
			}
			wantKeys(t, err, "ionix.token_file")
			wantText(t, err, "larger than 64 KiB", tt.path, "IONIXSNOW_IONIX_TOKEN_FILE")
			if cfg.IONIX.Token != "" {
				t.Errorf("token set to %d bytes", len(cfg.IONIX.Token))
			}
		})
	}
}

// TestSecretFilePermissionWarning: a secret file that any user may read or
// change loads, with a warning naming the key and the file (never the secret);
// one only its owner may read loads without.
func TestSecretFilePermissionWarning(t *testing.T) {
	const secret = "Pq7-permission-secret"
	tests := []struct {
		mode os.FileMode
		warn bool
	}{
		{0o600, false},
		{0o400, false},
		{0o640, false}, // the group of a file created here is this process's
		{0o644, true},
		{0o666, true},
		{0o602, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			yml := writeFile(t, "c.yaml", "ionix:\n  token_file: "+p+"\n")
			cfg, warnings, err := config.LoadEnviron(yml, nil, config.Needs{})
			if err != nil || cfg.IONIX.Token != secret {
				t.Fatalf("LoadEnviron = %v (token read: %v)", err, cfg.IONIX.Token == secret)
			}
			if !tt.warn {
				if len(warnings) != 0 {
					t.Errorf("warnings %v, want none", warnings)
				}
				return
			}
			if len(warnings) != 1 {
				t.Fatalf("warnings %v, want one", warnings)
			}
			w := warnings[0]
			if w.Key != "ionix.token_file" {
				t.Errorf("warning key %q, want ionix.token_file", w.Key)
			}
			for _, want := range []string{p, "any user", "chmod 600", yml + ":2"} {
				if !strings.Contains(w.Message, want) {
					t.Errorf("warning %q lacks %q", w.Message, want)
				}
			}
			if strings.Contains(w.String(), secret) {
				t.Errorf("warning shows the secret: %s", w)
			}
		})
	}
}
