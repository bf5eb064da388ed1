package testkit

import (
	"net"
	"testing"
)

// NonLoopbackIPv4 returns an IPv4 address of this machine that is neither loopback
// nor link-local, for a server that loopback rules must not cover. It skips the test
// on a machine that has none.
func NonLoopbackIPv4(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}
