package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// MaxSecretFileSize bounds what is read of a secret file (<key>_file): a
// secret is a line, so a larger file is a mistake (a wrong path, a device
// such as /dev/zero) and is refused without being read whole.
const MaxSecretFileSize = 64 << 10

var errSecretFileTooLarge = errors.New("secret file too large")

// readSecretFile reads the secret in the file at path, without its trailing
// newline, and what the file system says about the file. It reads at most
// MaxSecretFileSize+1 bytes; more fails with errSecretFileTooLarge.
func readSecretFile(path string) (string, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSecretFileSize+1))
	if err != nil {
		return "", nil, err
	}
	if len(data) > MaxSecretFileSize {
		return "", nil, errSecretFileTooLarge
	}
	return strings.TrimRight(string(data), "\r\n"), info, nil
}

// othersMayAccess names who, besides this process, may read or change a
// regular secret file ("any user", "group 1000"), or returns "" when no one
// may. Group access is fine when the group is the process's own (as with a
// Kubernetes secret volume of mode 0440 and fsGroup = runAsGroup). Devices
// and pipes (/dev/stdin, a shell's <(...)) are not checked.
func othersMayAccess(info fs.FileInfo) string {
	if !info.Mode().IsRegular() {
		return ""
	}
	perm := info.Mode().Perm()
	if perm&0o007 != 0 {
		return "any user"
	}
	if perm&0o070 == 0 {
		return ""
	}
	gid, ok := fileGroup(info)
	switch {
	case !ok:
		return "its group"
	case gid == os.Getegid():
		return ""
	}
	return fmt.Sprintf("group %d", gid)
}
