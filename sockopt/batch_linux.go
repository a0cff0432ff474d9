package sockopt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// x/sys/unix has the mmsghdr layout (unix.Mmsghdr) but no recvmmsg or
// sendmmsg wrappers, so the syscalls are made directly.

// Control message sizes. A read slot holds one UDP_GRO cmsg (an int); a
// write slot holds one UDP_SEGMENT cmsg (a uint16).
var (
	readCmsgSpace  = unix.CmsgSpace(4)
	writeCmsgSpace = unix.CmsgSpace(2)
	cmsgDataOff    = unix.CmsgLen(0)
)

// maxGSOPayload is the most payload one GSO message may carry: an IPv4 UDP
// datagram of 65535 bytes minus IP and UDP headers (IPv6 headers are
// larger, so this is checked again by the kernel there).
const maxGSOPayload = 65535 - 20 - 8

// datagrams is the number of datagrams a message of n bytes with segment
// size seg carries.
func datagrams(n, seg int) int {
	if seg <= 0 || n <= seg {
		return 1
	}
	return (n + seg - 1) / seg
}

// sockaddrSize is room for either sockaddr_in or sockaddr_in6.
const sockaddrSize = unix.SizeofSockaddrInet6

// sockaddr layout (Linux, both families):
//
//	 0      2      4                8                24            28
//	+------+------+----------------+----------------+-------------+
//	|family| port |  IPv4 addr     |                               |  sockaddr_in (16)
//	+------+------+----------------+----------------+-------------+
//	|family| port |   flowinfo     |   IPv6 addr    |  scope id   |  sockaddr_in6 (28)
//	+------+------+----------------+----------------+-------------+
//
// family and scope id are host-endian; port is big-endian.
const (
	saFamilyOff = 0
	saPortOff   = 2
	sa4AddrOff  = 4
	sa6AddrOff  = 8
)

type sockaddr [sockaddrSize]byte

// decode returns the address in sa, IPv4-mapped IPv6 unmapped. It does not
// allocate (an IPv6 zone would need an interface-name lookup and is left
// off).
func (sa *sockaddr) decode() netip.AddrPort {
	port := binary.BigEndian.Uint16(sa[saPortOff:])
	switch *(*uint16)(unsafe.Pointer(&sa[saFamilyOff])) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[sa4AddrOff:sa4AddrOff+4])), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16([16]byte(sa[sa6AddrOff : sa6AddrOff+16]))
		return netip.AddrPortFrom(a.Unmap(), port)
	}
	return netip.AddrPort{}
}

// encode writes ap into sa for a socket of the given family and returns
// the sockaddr length.
func (sa *sockaddr) encode(ap netip.AddrPort, is6 bool) uint32 {
	*sa = sockaddr{}
	binary.BigEndian.PutUint16(sa[saPortOff:], ap.Port())
	if !is6 {
		*(*uint16)(unsafe.Pointer(&sa[saFamilyOff])) = unix.AF_INET
		a := ap.Addr().As4()
		copy(sa[sa4AddrOff:], a[:])
		return unix.SizeofSockaddrInet4
	}
	*(*uint16)(unsafe.Pointer(&sa[saFamilyOff])) = unix.AF_INET6
	a := ap.Addr().As16() // IPv4 becomes IPv4-mapped
	copy(sa[sa6AddrOff:], a[:])
	return unix.SizeofSockaddrInet6
}

// readScratch is the per-Conn state of ReadBatch, allocated once.
type readScratch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []sockaddr
	ctrl  []byte // readCmsgSpace per slot when GRO is on
	gro   bool

	fn    func(fd uintptr) bool // c.recvmmsg, bound once
	k     int                   // slots prepared for this call
	n     int                   // slots filled by the kernel
	errno unix.Errno
}

func (r *readScratch) init(batch int, gro bool) {
	r.hdrs = make([]unix.Mmsghdr, batch)
	r.iovs = make([]unix.Iovec, batch)
	r.names = make([]sockaddr, batch)
	r.gro = gro
	if gro {
		r.ctrl = make([]byte, batch*readCmsgSpace)
	}
}

// ReadBatch waits until at least one datagram has arrived and then fills
// msgs[:n] with up to min(len(msgs), BatchSize()) datagrams in one recvmmsg,
// setting N, Addr and SegSize of each. It must be called from one goroutine
// at a time. After Close it returns an error wrapping net.ErrClosed. It does
// not allocate.
func (c *Conn) ReadBatch(msgs []Message) (int, error) {
	r := &c.r
	k := min(len(msgs), c.batch)
	if k == 0 {
		return 0, nil
	}
	for i := range k {
		b := msgs[i].Buf
		iov := &r.iovs[i]
		iov.Base = nil
		if len(b) > 0 {
			iov.Base = &b[0]
		}
		iov.SetLen(len(b))
		h := &r.hdrs[i].Hdr
		h.Name = &r.names[i][0]
		h.Namelen = sockaddrSize
		h.Iov = iov
		h.Iovlen = 1
		if r.gro {
			h.Control = &r.ctrl[i*readCmsgSpace]
			h.SetControllen(readCmsgSpace)
		}
		h.Flags = 0
	}
	r.k, r.n, r.errno = k, 0, 0
	if err := c.raw.Read(r.fn); err != nil {
		return 0, fmt.Errorf("sockopt: read: %w", err)
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", r.errno)
	}
	var pkts, bytes, trunc uint64
	for i := range r.n {
		m := &msgs[i]
		h := &r.hdrs[i]
		m.N = int(h.Len)
		m.Addr = r.names[i].decode()
		m.SegSize = 0
		if r.gro {
			if seg := groSegSize(r.ctrl[i*readCmsgSpace:], int(h.Hdr.Controllen)); seg > 0 && m.N > seg {
				m.SegSize = seg
			}
		}
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			trunc++
		}
		pkts += uint64(datagrams(m.N, m.SegSize))
		bytes += uint64(m.N)
	}
	c.stats.readCalls.Add(1)
	c.stats.packetsRead.Add(pkts)
	c.stats.bytesRead.Add(bytes)
	if trunc > 0 {
		c.stats.truncated.Add(trunc)
	}
	return r.n, nil
}

// recvmmsg is the RawConn.Read callback: one non-blocking recvmmsg.
// Returning false parks the goroutine on the netpoller until readable.
func (c *Conn) recvmmsg(fd uintptr) bool {
	r := &c.r
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.k), 0, 0, 0)
		switch errno {
		case 0:
			r.n = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.errno = errno
			return true
		}
	}
}

// groSegSize returns the segment size of a UDP_GRO control message in
// ctrl[:n], or 0 when there is none.
func groSegSize(ctrl []byte, n int) int {
	ctrl = ctrl[:min(n, len(ctrl))]
	for len(ctrl) >= cmsgDataOff {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		l := int(h.Len)
		if l < cmsgDataOff || l > len(ctrl) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && l >= cmsgDataOff+4 {
			return int(*(*int32)(unsafe.Pointer(&ctrl[cmsgDataOff])))
		}
		next := unix.CmsgSpace(l - cmsgDataOff)
		if next > len(ctrl) {
			return 0
		}
		ctrl = ctrl[next:]
	}
	return 0
}

// writeScratch is the per-Conn state of WriteBatch, allocated once and
// guarded by Conn.wmu.
type writeScratch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []sockaddr
	ctrl  []byte   // writeCmsgSpace per slot, UDP_SEGMENT headers pre-filled
	ends  []cursor // ends[i]: where the batch stands once slot i is sent
	segs  []int    // segs[i]: datagrams slot i carries

	fn     func(fd uintptr) bool // c.sendmmsg, bound once
	k      int                   // slots filled
	sent   int                   // slots the kernel accepted
	hasGSO bool                  // some slot carries UDP_SEGMENT
	errno  unix.Errno
}

// cursor is a position in the caller's messages: message i, byte off.
type cursor struct{ i, off int }

func (w *writeScratch) init(batch int) {
	w.hdrs = make([]unix.Mmsghdr, batch)
	w.iovs = make([]unix.Iovec, batch)
	w.names = make([]sockaddr, batch)
	w.ctrl = make([]byte, batch*writeCmsgSpace)
	w.ends = make([]cursor, batch)
	w.segs = make([]int, batch)
	for i := range batch {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&w.ctrl[i*writeCmsgSpace]))
		h.Level = unix.IPPROTO_UDP
		h.Type = unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
	}
}

// fill prepares up to len(w.hdrs) slots from msgs starting at cur. A message with SegSize>0 takes one GSO slot
// when gso is on and it fits the kernel's limits, or one slot per segment
// otherwise.
func (w *writeScratch) fill(msgs []Message, cur cursor, gso, is6 bool) {
	k := 0
	w.hasGSO = false
	for k < len(w.hdrs) && cur.i < len(msgs) {
		m := &msgs[cur.i]
		dst, _ := checkDest(m.Addr, is6, true) // validated by WriteBatch
		b := m.Buf[cur.off:]
		seg := m.SegSize
		useGSO := false
		switch {
		case seg <= 0 || len(b) <= seg:
			// one datagram: the rest of the message
		case gso && seg <= maxGSOPayload/2:
			// as many whole segments as one GSO message may carry
			b = b[:min(len(b), min(MaxGSOSegments, maxGSOPayload/seg)*seg)]
			useGSO = true
		default:
			b = b[:seg] // one segment as its own datagram
		}
		iov := &w.iovs[k]
		iov.Base = nil
		if len(b) > 0 {
			iov.Base = &b[0]
		}
		iov.SetLen(len(b))
		h := &w.hdrs[k].Hdr
		h.Name = &w.names[k][0]
		h.Namelen = w.names[k].encode(dst, is6)
		h.Iov = iov
		h.Iovlen = 1
		h.Control = nil
		h.SetControllen(0)
		w.segs[k] = 1
		if useGSO {
			*(*uint16)(unsafe.Pointer(&w.ctrl[k*writeCmsgSpace+cmsgDataOff])) = uint16(seg)
			h.Control = &w.ctrl[k*writeCmsgSpace]
			h.SetControllen(writeCmsgSpace)
			w.segs[k] = datagrams(len(b), seg)
			w.hasGSO = true
		}
		cur.off += len(b)
		if cur.off >= len(m.Buf) {
			cur = cursor{cur.i + 1, 0}
		}
		w.ends[k] = cur
		k++
	}
	w.k = k
}

// WriteBatch sends every message in msgs, using as few sendmmsg calls as
// it can, and returns how many messages were sent whole. It waits on the
// netpoller while the send buffer is full. Destinations are validated
// before anything is sent (an error wrapping ErrMessage sends nothing).
// Messages with SegSize>0 go out as GSO messages when GSO() is true and
// as separate datagrams otherwise; if the kernel refuses GSO, WriteBatch
// turns it off, counts a GSO fallback and resends the rest without it.
// It is safe for concurrent use and does not allocate.
func (c *Conn) WriteBatch(msgs []Message) (int, error) {
	for i := range msgs {
		if _, err := checkDest(msgs[i].Addr, c.is6, c.mcast); err != nil {
			return 0, &MessageError{Index: i, Err: err}
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := &c.w
	var cur cursor
	var gsoErr error
	for cur.i < len(msgs) {
		w.fill(msgs, cur, c.gso.Load(), c.is6)
		w.sent, w.errno = 0, 0
		err := c.raw.Write(w.fn)
		var pkts, bytes uint64
		for j := range w.sent {
			pkts += uint64(w.segs[j])
			bytes += uint64(w.iovs[j].Len)
		}
		c.stats.packetsWritten.Add(pkts)
		c.stats.bytesWritten.Add(bytes)
		if w.sent > 0 {
			cur = w.ends[w.sent-1]
		}
		if err != nil {
			return cur.i, errors.Join(gsoErr, fmt.Errorf("sockopt: write: %w", err))
		}
		if w.errno != 0 {
			if w.hasGSO && gsoRefused(w.errno) {
				// The kernel (or the route's device) cannot segment:
				// fall back for good and resend from the failed slot.
				c.gso.Store(false)
				c.stats.gsoFallbacks.Add(1)
				gsoErr = fmt.Errorf("%w: %w", ErrGSOUnsupported, os.NewSyscallError("sendmmsg", w.errno))
				continue
			}
			return cur.i, errors.Join(gsoErr, os.NewSyscallError("sendmmsg", w.errno))
		}
	}
	return cur.i, nil
}

// gsoRefused reports whether a send error means the kernel will not do
// UDP GSO here: EIO when the egress device lacks checksum offload, EINVAL
// on kernels or families that reject the cmsg.
func gsoRefused(errno unix.Errno) bool {
	return errno == unix.EIO || errno == unix.EINVAL
}

// sendmmsg is the RawConn.Write callback: it sends the prepared slots,
// looping over partial sends. Returning false parks the goroutine on the
// netpoller until writable; w.sent keeps the progress across the wait.
func (c *Conn) sendmmsg(fd uintptr) bool {
	w := &c.w
	for w.sent < w.k {
		if w.hasGSO && c.refuseGSOForTest > 0 {
			c.refuseGSOForTest--
			w.errno = unix.EIO
			return true
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&w.hdrs[w.sent])), uintptr(w.k-w.sent), 0, 0, 0)
		switch errno {
		case 0:
			w.sent += int(n)
			c.stats.writeCalls.Add(1)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			w.errno = errno
			return true
		}
	}
	return true
}
