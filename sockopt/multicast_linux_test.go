package sockopt

import (
	"net/netip"
	"testing"
	"time"
)

// TestDualStackMulticastOnLoopback: a socket bound to :: joins an IPv4
// group and receives it; a dual-stack sender reaches it through
// IP_MULTICAST_IF set on its IPv6 socket. Senders are IPv4-mapped on the
// wire and arrive unmapped.
func TestDualStackMulticastOnLoopback(t *testing.T) {
	group := netip.MustParseAddr("239.255.77.78")
	rx := listen(t, Config{BindAddr: netip.IPv6Unspecified(), DisableGRO: true})
	if err := rx.JoinGroup(group, "lo"); err != nil {
		t.Fatalf("JoinGroup(IPv4 group) on a dual-stack socket: %v", err)
	}
	tx := listen(t, Config{BindAddr: netip.IPv6Unspecified(), MulticastInterface: "lo", MulticastLoop: true})
	dst := netip.AddrPortFrom(group, rx.LocalAddr().Port())
	if _, err := tx.WriteBatch([]Message{{Buf: []byte("dual"), Addr: dst}}); err != nil {
		t.Fatal(err)
	}
	if err := rx.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	msgs := newMessages(rx.BatchSize(), 2048)
	n, err := rx.ReadBatch(msgs)
	if err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	m := msgs[0]
	if n < 1 || string(m.Buf[:m.N]) != "dual" || !m.Addr.Addr().Is4() || m.Addr.Port() != tx.LocalAddr().Port() {
		t.Fatalf("received %q from %v", m.Buf[:m.N], m.Addr)
	}
}

// TestIPv6GroupOptions: an IPv6 socket joins and leaves an IPv6 group,
// and refuses an IPv4 one; an IPv4 socket refuses an IPv6 group.
func TestIPv6GroupOptions(t *testing.T) {
	c6, err := Listen(Config{BindAddr: netip.IPv6Loopback(), MulticastInterface: "lo", MulticastLoop: true})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer c6.Close()
	g6 := netip.MustParseAddr("ff12::7946:1")
	if err := c6.JoinGroup(g6, "lo"); err != nil {
		t.Skipf("lo takes no IPv6 group here: %v", err)
	}
	if err := c6.LeaveGroup(g6, "lo"); err != nil {
		t.Errorf("LeaveGroup(%v): %v", g6, err)
	}
	if err := c6.JoinGroup(netip.MustParseAddr("239.255.77.79"), "lo"); err == nil {
		t.Error("an IPv6-only socket joined an IPv4 group")
	}
	c4 := listen(t, Config{})
	if err := c4.JoinGroup(g6, "lo"); err == nil {
		t.Error("an IPv4 socket joined an IPv6 group")
	}
}
