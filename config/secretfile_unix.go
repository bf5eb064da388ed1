//go:build unix

package config

import (
	"io/fs"
	"syscall"
)

// fileGroup returns the group that owns the file.
func fileGroup(info fs.FileInfo) (int, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Gid), true
}
