package engine

import (
	"fmt"
	"net/netip"

	"github.com/warpmesh/warpmesh/sockopt"
)

// Transport is the engine's seam to the network: batches of datagrams to and
// from netip.AddrPort addresses. sockopt.Conn implements it for real UDP
// sockets; tests and simulations supply in-memory ones.
//
// ReadBatch is called from one goroutine and blocks until at least one
// datagram is ready; WriteBatch may be called from several goroutines. Both
// use caller-owned buffers in msgs and must not allocate in steady state.
// After Close, both return an error wrapping net.ErrClosed.
type Transport interface {
	ReadBatch(msgs []sockopt.Message) (int, error)
	WriteBatch(msgs []sockopt.Message) (int, error)
	LocalAddr() netip.AddrPort
	Close() error
}

var _ Transport = (*sockopt.Conn)(nil)

// openTransports opens the node's sockets: the unicast socket always, and a
// multicast socket when the group uses a different port than the unicast
// socket (several nodes on one host). With one shared port, the unicast
// socket also joins the group.
func openTransports(c *config) (uni, mcast *sockopt.Conn, err error) {
	base := sockopt.Config{
		BindAddr:   c.bind,
		Port:       max(c.Port, 0), // AnyPort: the kernel picks
		RecvBuffer: c.RecvBuffer,
		SendBuffer: c.SendBuffer,
		BatchSize:  c.BatchSize,
		DisableGRO: true, // frames are parsed one datagram at a time
	}
	if c.group.IsValid() {
		base.MulticastInterface = c.Interface
		base.MulticastLoop = true
		base.MulticastTTL = 1
	}
	uni, err = sockopt.Listen(base)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: listen on %v:%d: %w", c.bind, c.Port, err)
	}
	if !c.group.IsValid() {
		return uni, nil, nil
	}
	if c.groupPort == c.Port {
		if err := uni.JoinGroup(c.group, c.Interface); err != nil {
			uni.Close()
			return nil, nil, fmt.Errorf("engine: join %v on %s: %w", c.group, c.Interface, err)
		}
		return uni, nil, nil
	}
	mc := base
	mc.BindAddr = netip.IPv4Unspecified()
	if c.group.Is6() {
		mc.BindAddr = netip.IPv6Unspecified()
	}
	mc.Port = c.groupPort
	mc.ReusePort = true
	mcast, err = sockopt.Listen(mc)
	if err != nil {
		uni.Close()
		return nil, nil, fmt.Errorf("engine: listen on group port %d: %w", c.groupPort, err)
	}
	if err := mcast.JoinGroup(c.group, c.Interface); err != nil {
		uni.Close()
		mcast.Close()
		return nil, nil, fmt.Errorf("engine: join %v on %s: %w", c.group, c.Interface, err)
	}
	return uni, mcast, nil
}
