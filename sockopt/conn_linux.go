package sockopt

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Conn is a UDP socket read and written in batches. ReadBatch must be
// called from one goroutine at a time; every other method is safe for
// concurrent use.
type Conn struct {
	udp   *net.UDPConn
	raw   syscall.RawConn
	pc4   *ipv4.PacketConn
	local netip.AddrPort
	is6   bool // AF_INET6 socket (destinations are encoded as sockaddr_in6)
	batch int  // messages per syscall
	mcast bool // Config.MulticastInterface was set

	gsoCapable bool        // the kernel accepted UDP_SEGMENT at Listen
	gso        atomic.Bool // GSO in use (turned off when the kernel refuses)
	gro        bool        // UDP_GRO enabled on the socket
	rcvbuf     int
	sndbuf     int

	stats     counters
	closeOnce sync.Once
	closeErr  error

	r readScratch

	wmu sync.Mutex // guards w and refuseGSOForTest
	w   writeScratch
	// refuseGSOForTest, when >0, makes the next GSO sends fail with EIO as
	// a kernel without GSO would; tests use it to drive the fallback.
	refuseGSOForTest int
}

// Listen opens a UDP socket as cfg says. The socket is registered with Go's
// netpoller, so a ReadBatch or WriteBatch that must wait parks its goroutine
// instead of blocking a thread. Errors name the Config field or the
// setsockopt step that failed; syscall errors are *os.SyscallError.
func Listen(cfg Config) (*Conn, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	var mcastIfi *net.Interface
	if cfg.MulticastInterface != "" {
		mcastIfi, err = net.InterfaceByName(cfg.MulticastInterface)
		if err != nil {
			return nil, configError("MulticastInterface", "%v", err)
		}
	}
	network := "udp4"
	if cfg.BindAddr.Is6() {
		network = "udp6"
		if cfg.BindAddr.IsUnspecified() {
			network = "udp" // [::] with "udp" is dual-stack
		}
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = setPreBindOptions(int(fd), cfg) }); err != nil {
			return err
		}
		return serr
	}}
	addr := netip.AddrPortFrom(cfg.BindAddr, uint16(cfg.Port)).String()
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("sockopt: listen %s %s: %w", network, addr, err)
	}
	udp := pc.(*net.UDPConn)
	c, err := newConn(udp, cfg, mcastIfi)
	if err != nil {
		_ = udp.Close() // the setup error is the one worth reporting
		return nil, err
	}
	return c, nil
}

// setPreBindOptions sets the options that must precede bind.
func setPreBindOptions(fd int, cfg Config) error {
	// For UDP, SO_REUSEADDR lets a second socket bind the same address and
	// port and steal part of its unicast traffic, so it is only set when
	// sharing is asked for.
	if cfg.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	if cfg.RecvBuffer > 0 {
		if err := setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, cfg.RecvBuffer); err != nil {
			return os.NewSyscallError("setsockopt SO_RCVBUF", err)
		}
	}
	if cfg.SendBuffer > 0 {
		if err := setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, cfg.SendBuffer); err != nil {
			return os.NewSyscallError("setsockopt SO_SNDBUF", err)
		}
	}
	if cfg.Device != "" {
		if err := unix.BindToDevice(fd, cfg.Device); err != nil {
			return os.NewSyscallError("setsockopt SO_BINDTODEVICE "+cfg.Device, err)
		}
	}
	return nil
}

// setBuffer tries the privileged option (which ignores net.core.*mem_max)
// and falls back to the ordinary one, which the kernel caps.
func setBuffer(fd, force, plain, size int) error {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) == nil {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
}

// newConn finishes the socket set-up after bind and allocates the scratch.
func newConn(udp *net.UDPConn, cfg Config, mcastIfi *net.Interface) (*Conn, error) {
	raw, err := udp.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("sockopt: syscall conn: %w", err)
	}
	c := &Conn{
		udp:   udp,
		raw:   raw,
		is6:   cfg.BindAddr.Is6(),
		batch: cfg.BatchSize,
		mcast: mcastIfi != nil,
	}
	c.local = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	if !c.is6 {
		c.local = netip.AddrPortFrom(c.local.Addr().Unmap(), c.local.Port())
	}
	var serr error
	err = raw.Control(func(fd uintptr) { serr = c.probe(int(fd), cfg) })
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	if err := c.setMulticastOptions(cfg, mcastIfi); err != nil {
		return nil, err
	}
	c.r.init(c.batch, c.gro)
	c.w.init(c.batch)
	// Method values allocate once, here, instead of once per call.
	c.r.fn = c.recvmmsg
	c.w.fn = c.sendmmsg
	return c, nil
}

// probe reads the granted buffer sizes and detects GSO and GRO.
func (c *Conn) probe(fd int, cfg Config) error {
	var err error
	if c.rcvbuf, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
		return os.NewSyscallError("getsockopt SO_RCVBUF", err)
	}
	if c.sndbuf, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return os.NewSyscallError("getsockopt SO_SNDBUF", err)
	}
	// A kernel that knows UDP_SEGMENT (4.18+) answers the getsockopt.
	if _, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
		c.gsoCapable = true
		c.gso.Store(!cfg.DisableGSO)
	}
	if !cfg.DisableGRO {
		c.gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	}
	return nil
}

// LocalAddr returns the address the socket is bound to.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// BatchSize returns the most messages moved per syscall.
func (c *Conn) BatchSize() int { return c.batch }

// GSO reports whether WriteBatch sends Messages with SegSize>0 as single
// UDP_SEGMENT messages. It turns false if the kernel refuses GSO at send
// time.
func (c *Conn) GSO() bool { return c.gso.Load() }

// SetGSO turns GSO on or off for later writes. Turning it on returns
// ErrGSOUnsupported when the kernel did not offer UDP_SEGMENT at Listen.
func (c *Conn) SetGSO(on bool) error {
	if on && !c.gsoCapable {
		return ErrGSOUnsupported
	}
	c.gso.Store(on)
	return nil
}

// GRO reports whether UDP_GRO is on, in which case ReadBatch may return
// several datagrams in one Message (see Message.SegSize and GROBufferSize).
func (c *Conn) GRO() bool { return c.gro }

// RecvBufferSize returns the receive buffer size the kernel granted, as
// getsockopt reports it (Linux reports twice the size asked for, the extra
// half being its bookkeeping allowance).
func (c *Conn) RecvBufferSize() int { return c.rcvbuf }

// SendBufferSize returns the send buffer size the kernel granted, as
// RecvBufferSize does.
func (c *Conn) SendBufferSize() int { return c.sndbuf }

// Stats returns a snapshot of the Conn's counters. It does not allocate.
func (c *Conn) Stats() ConnStats { return c.stats.snapshot() }

// SetReadDeadline makes a blocked or later ReadBatch return an error
// wrapping os.ErrDeadlineExceeded once t passes; the zero time clears it.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.udp.SetReadDeadline(t) }

// SetWriteDeadline bounds how long WriteBatch waits for send buffer space;
// the zero time clears it.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.udp.SetWriteDeadline(t) }

// Close closes the socket, unblocking ReadBatch and WriteBatch, which then
// return errors wrapping net.ErrClosed. Close is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.udp.Close() })
	return c.closeErr
}

// setMulticast6 sets the IPv6 multicast options (x/net/ipv6 is not a
// dependency of this module; the options are three integers).
func (c *Conn) setMulticast6(cfg Config, ifi *net.Interface) error {
	return c.control(func(fd int) error {
		if ifi != nil {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index); err != nil {
				return os.NewSyscallError("setsockopt IPV6_MULTICAST_IF", err)
			}
		}
		loop := 0
		if cfg.MulticastLoop {
			loop = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, loop); err != nil {
			return os.NewSyscallError("setsockopt IPV6_MULTICAST_LOOP", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, cfg.MulticastTTL); err != nil {
			return os.NewSyscallError("setsockopt IPV6_MULTICAST_HOPS", err)
		}
		return nil
	})
}

// group6 joins or leaves an IPv6 multicast group on ifi.
func (c *Conn) group6(group netip.Addr, ifi *net.Interface, join bool) error {
	mreq := unix.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(ifi.Index)}
	opt, name := unix.IPV6_JOIN_GROUP, "setsockopt IPV6_JOIN_GROUP"
	if !join {
		opt, name = unix.IPV6_LEAVE_GROUP, "setsockopt IPV6_LEAVE_GROUP"
	}
	return c.control(func(fd int) error {
		return os.NewSyscallError(name, unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, opt, &mreq))
	})
}

// control runs f on the socket's descriptor.
func (c *Conn) control(f func(fd int) error) error {
	var ferr error
	if err := c.raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
