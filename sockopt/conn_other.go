//go:build !linux

package sockopt

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// Conn is a UDP socket read and written in batches. On this platform a
// batch is one datagram per syscall (ReadFromUDPAddrPort and
// WriteToUDPAddrPort) and GSO and GRO are off. ReadBatch must be called
// from one goroutine at a time; every other method is safe for concurrent
// use.
type Conn struct {
	udp   *net.UDPConn
	pc4   *ipv4.PacketConn
	local netip.AddrPort
	is6   bool
	mcast bool

	gso    atomic.Bool // always false here; kept for the shared API
	rcvbuf int
	sndbuf int

	stats     counters
	closeOnce sync.Once
	closeErr  error

	wmu sync.Mutex // serializes WriteBatch, matching the Linux contract
}

// Listen opens a UDP socket as cfg says. ReusePort and Device are not
// supported on this platform and return errors naming them.
func Listen(cfg Config) (*Conn, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if cfg.ReusePort {
		return nil, fmt.Errorf("%w: ReusePort: %w", ErrConfig, ErrUnsupported)
	}
	if cfg.Device != "" {
		return nil, fmt.Errorf("%w: Device: %w", ErrConfig, ErrUnsupported)
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
			network = "udp"
		}
	}
	var lc net.ListenConfig
	addr := netip.AddrPortFrom(cfg.BindAddr, uint16(cfg.Port)).String()
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("sockopt: listen %s %s: %w", network, addr, err)
	}
	udp := pc.(*net.UDPConn)
	c := &Conn{udp: udp, is6: cfg.BindAddr.Is6(), mcast: mcastIfi != nil}
	c.local = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	if !c.is6 {
		c.local = netip.AddrPortFrom(c.local.Addr().Unmap(), c.local.Port())
	}
	if err := c.setBuffers(cfg); err != nil {
		_ = udp.Close() // the set-up error is the one worth reporting
		return nil, err
	}
	if err := c.setMulticastOptions(cfg, mcastIfi); err != nil {
		_ = udp.Close() // the set-up error is the one worth reporting
		return nil, err
	}
	return c, nil
}

// setBuffers asks for the configured buffer sizes. This platform offers no
// portable way to read back what was granted, so the sizes asked for are
// reported.
func (c *Conn) setBuffers(cfg Config) error {
	if cfg.RecvBuffer > 0 {
		if err := c.udp.SetReadBuffer(cfg.RecvBuffer); err != nil {
			return fmt.Errorf("sockopt: SO_RCVBUF: %w", err)
		}
		c.rcvbuf = cfg.RecvBuffer
	}
	if cfg.SendBuffer > 0 {
		if err := c.udp.SetWriteBuffer(cfg.SendBuffer); err != nil {
			return fmt.Errorf("sockopt: SO_SNDBUF: %w", err)
		}
		c.sndbuf = cfg.SendBuffer
	}
	return nil
}

// LocalAddr returns the address the socket is bound to.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// BatchSize returns the most messages moved per syscall: 1 here.
func (c *Conn) BatchSize() int { return 1 }

// GSO reports whether UDP GSO is in use: never on this platform.
func (c *Conn) GSO() bool { return c.gso.Load() }

// SetGSO turns GSO off, or returns ErrGSOUnsupported when asked to turn it
// on: this platform has no UDP GSO.
func (c *Conn) SetGSO(on bool) error {
	if on {
		return ErrGSOUnsupported
	}
	return nil
}

// GRO reports whether UDP GRO is on: never on this platform.
func (c *Conn) GRO() bool { return false }

// RecvBufferSize returns the receive buffer size asked for (0: the
// system default); this platform does not report the granted size.
func (c *Conn) RecvBufferSize() int { return c.rcvbuf }

// SendBufferSize returns the send buffer size asked for, as
// RecvBufferSize does.
func (c *Conn) SendBufferSize() int { return c.sndbuf }

// Stats returns a snapshot of the Conn's counters.
func (c *Conn) Stats() ConnStats { return c.stats.snapshot() }

// SetReadDeadline makes a blocked or later ReadBatch return an error
// wrapping os.ErrDeadlineExceeded once t passes; the zero time clears it.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.udp.SetReadDeadline(t) }

// SetWriteDeadline bounds how long WriteBatch may block; the zero time
// clears it.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.udp.SetWriteDeadline(t) }

// Close closes the socket, unblocking ReadBatch and WriteBatch, which then
// return errors wrapping net.ErrClosed. Close is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.udp.Close() })
	return c.closeErr
}

// ReadBatch waits for one datagram and puts it in msgs[0]. GRO is off, so
// SegSize is always 0. After Close it returns an error wrapping
// net.ErrClosed.
func (c *Conn) ReadBatch(msgs []Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	m := &msgs[0]
	n, addr, err := c.udp.ReadFromUDPAddrPort(m.Buf)
	if err != nil {
		return 0, fmt.Errorf("sockopt: read: %w", err)
	}
	m.N, m.SegSize = n, 0
	m.Addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	c.stats.readCalls.Add(1)
	c.stats.packetsRead.Add(1)
	c.stats.bytesRead.Add(uint64(n))
	return 1, nil
}

// WriteBatch sends every message in msgs, one datagram per syscall (a
// message with SegSize>0 is split into SegSize-byte datagrams), and returns
// how many messages were sent whole. Destinations are validated before
// anything is sent. It is safe for concurrent use.
func (c *Conn) WriteBatch(msgs []Message) (int, error) {
	for i := range msgs {
		if _, err := checkDest(msgs[i].Addr, c.is6, c.mcast); err != nil {
			return 0, &MessageError{Index: i, Err: err}
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		dst, _ := checkDest(m.Addr, c.is6, true) // validated above
		if c.is6 && dst.Addr().Is4() {
			dst = netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
		}
		b := m.Buf
		for first := true; first || len(b) > 0; first = false {
			d := b
			if m.SegSize > 0 && len(d) > m.SegSize {
				d = d[:m.SegSize]
			}
			if _, err := c.udp.WriteToUDPAddrPort(d, dst); err != nil {
				return i, fmt.Errorf("sockopt: write: %w", err)
			}
			b = b[len(d):]
			c.stats.writeCalls.Add(1)
			c.stats.packetsWritten.Add(1)
			c.stats.bytesWritten.Add(uint64(len(d)))
		}
	}
	return len(msgs), nil
}

// SetRandomDrop is a Linux-only test aid (a classic BPF socket filter);
// here it validates fraction and returns ErrUnsupported.
func (c *Conn) SetRandomDrop(fraction float64) error {
	if err := checkFraction(fraction); err != nil {
		return err
	}
	return fmt.Errorf("sockopt: SetRandomDrop: %w", ErrUnsupported)
}

// setMulticast6 reports that IPv6 multicast options are not offered here
// (x/net/ipv6 is not a dependency of this module).
func (c *Conn) setMulticast6(cfg Config, ifi *net.Interface) error {
	if ifi != nil {
		return fmt.Errorf("%w: MulticastInterface on an IPv6 socket: %w", ErrConfig, ErrUnsupported)
	}
	return nil
}

// group6 reports that IPv6 multicast groups are not offered here.
func (c *Conn) group6(group netip.Addr, ifi *net.Interface, join bool) error {
	return fmt.Errorf("sockopt: IPv6 group %v: %w", group, ErrUnsupported)
}
