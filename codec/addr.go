package codec

import (
	"encoding/binary"
	"net/netip"
)

// AddrLen is the encoded length of an address: 16 address bytes (IPv4 as
// v4-mapped IPv6) and a u16 port.
const AddrLen = 18

// Address field offsets (see "Address" in doc.go).
const (
	offAddrIP   = 0  // 16 bytes, IPv6 or v4-mapped IPv4
	offAddrPort = 16 // u16 port
)

var (
	zeroAddr     [AddrLen]byte
	ipv4Broadcst = netip.AddrFrom4([4]byte{255, 255, 255, 255})
)

// AppendAddr appends the AddrLen-byte encoding of ap: its 16-byte form
// (IPv4 v4-mapped; an IPv6 zone is dropped) and port. The zero AddrPort
// (not valid) encodes as 18 zero bytes, meaning "no address". It does not
// allocate when dst has AddrLen bytes spare.
func AppendAddr(dst []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(dst, zeroAddr[:]...)
	}
	ip := ap.Addr().As16()
	dst = append(dst, ip[:]...)
	return binary.BigEndian.AppendUint16(dst, ap.Port())
}

// ParseAddr decodes the address at the start of b; n == AddrLen. IPv4
// arrives unmapped (a 4-byte netip.Addr). 18 zero bytes decode to the zero
// AddrPort ("no address": the receiver uses what it knows, e.g. the packet
// source). Anything else must be a usable unicast destination, or
// ErrBadAddr: port 0, an unspecified address (:: or 0.0.0.0), a multicast
// address and the IPv4 limited broadcast are rejected, so a forged digest
// cannot aim traffic at a group or a broadcast domain. ErrShort if b is
// shorter than AddrLen. It does not allocate.
func ParseAddr(b []byte) (netip.AddrPort, int, error) {
	if len(b) < AddrLen {
		return netip.AddrPort{}, 0, ErrShort
	}
	raw := b[:AddrLen]
	if string(raw) == string(zeroAddr[:]) {
		return netip.AddrPort{}, AddrLen, nil
	}
	ip := netip.AddrFrom16([16]byte(raw[offAddrIP:offAddrPort])).Unmap()
	port := binary.BigEndian.Uint16(raw[offAddrPort:])
	if port == 0 || ip.IsUnspecified() || ip.IsMulticast() || ip == ipv4Broadcst {
		return netip.AddrPort{}, 0, ErrBadAddr
	}
	return netip.AddrPortFrom(ip, port), AddrLen, nil
}
