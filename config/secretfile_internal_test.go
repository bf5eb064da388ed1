//go:build unix

package config

import (
	"io/fs"
	"os"
	"syscall"
	"testing"
	"time"
)

type fakeInfo struct {
	mode fs.FileMode
	gid  int
}

func (f fakeInfo) Name() string       { return "secret" }
func (f fakeInfo) Size() int64        { return 6 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Gid: uint32(f.gid)} }

// TestOthersMayAccess: group access counts only for a group other than the
// process's (a Kubernetes secret volume of mode 0440 with fsGroup = runAsGroup
// is fine); devices and pipes are not checked.
func TestOthersMayAccess(t *testing.T) {
	own, other := os.Getegid(), os.Getegid()+1
	tests := []struct {
		name string
		info fakeInfo
		want string
	}{
		{"owner only", fakeInfo{0o600, other}, ""},
		{"own group may read", fakeInfo{0o440, own}, ""},
		{"other group may read", fakeInfo{0o440, other}, "group "},
		{"other group may write", fakeInfo{0o620, other}, "group "},
		{"anyone may read", fakeInfo{0o604, own}, "any user"},
		{"a device", fakeInfo{fs.ModeDevice | fs.ModeCharDevice | 0o666, own}, ""},
		{"a pipe", fakeInfo{fs.ModeNamedPipe | 0o666, own}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := othersMayAccess(tt.info)
			if tt.want == "" && got != "" || tt.want != "" && (len(got) < len(tt.want) || got[:len(tt.want)] != tt.want) {
				t.Errorf("othersMayAccess(%v, gid %d) = %q, want %q…", tt.info.mode, tt.info.gid, got, tt.want)
			}
		})
	}
}
