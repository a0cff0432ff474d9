package engine

import (
	"net/netip"
	"testing"

	"github.com/warpmesh/warpmesh/sockopt"
)

// TestWriteSkipsUnsendableAlone: a batch holding one destination the
// socket cannot send to (an IPv6 member, learned from a digest, on an
// IPv4 socket) loses that datagram only; before, the socket's refusal of
// the whole batch cost the datagrams ahead of it too, so an IPv4 node in a
// mixed mesh dropped heartbeats to reachable members and suspected them.
func TestWriteSkipsUnsendableAlone(t *testing.T) {
	p := freePorts(t, 2)
	a := startNode(t, unicastOptions(p[0]))
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p[1])) // nobody listens: UDP does not care
	v6 := netip.MustParseAddrPort("[::1]:9")
	frame := []byte("not a frame")
	before := a.Stats()
	a.write([]sockopt.Message{{Buf: frame, Addr: to}, {Buf: frame, Addr: to}, {Buf: frame, Addr: v6}, {Buf: frame, Addr: to}})
	after := a.Stats()
	if sent, errs := after.FramesSent-before.FramesSent, after.SendErrors-before.SendErrors; sent != 3 || errs != 1 {
		t.Fatalf("sent %d datagrams with %d errors, want 3 and 1 (only the IPv6 one refused)", sent, errs)
	}
}
