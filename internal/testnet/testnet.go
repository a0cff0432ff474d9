// Package testnet holds the helpers every package's tests share: free
// loopback ports to bind, and waiting on a condition with a deadline
// instead of sleeping. It is for tests only and sends no traffic.
package testnet

import (
	"net"
	"testing"
	"time"
)

// FreePorts reserves n distinct UDP ports on 127.0.0.1 and releases them
// for the test to bind. Another process may take one in between; tests
// that bind them fail loudly if so.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	conns := make([]*net.UDPConn, n)
	ports := make([]int, n)
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		ports[i] = c.LocalAddr().(*net.UDPAddr).Port
	}
	for _, c := range conns {
		c.Close()
	}
	return ports
}

// WaitFor polls cond until it holds, failing the test with what once d has
// passed. The 2 ms poll interval is not synchronisation: cond is.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
