//go:build linux

package adversary

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
)

// spoofer sends UDP datagrams with any IPv4 source address, through a raw
// socket (root only). It sends only to loopback addresses.
type spoofer struct {
	fd   int
	sent uint64
}

func newSpoofer(t *testing.T) *spoofer {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		t.Skipf("raw socket (forged source addresses) needs root: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &spoofer{fd: fd}
}

// send writes payload as a UDP datagram from src to dst (both IPv4
// loopback), IP header included; the UDP checksum is left 0 (none).
func (s *spoofer) send(t *testing.T, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	if !dst.Addr().IsLoopback() || !src.Addr().Is4() {
		t.Fatalf("spoofer sends only IPv4 loopback, not %v", dst)
	}
	const ipLen, udpLen = 20, 8
	pkt := make([]byte, ipLen+udpLen+len(payload))
	pkt[0] = 0x45 // IPv4, 5 words
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64 // TTL
	pkt[9] = unix.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(pkt[12:16], s4[:])
	copy(pkt[16:20], d4[:])
	binary.BigEndian.PutUint16(pkt[10:], ipChecksum(pkt[:ipLen]))
	u := pkt[ipLen:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(payload)))
	copy(u[udpLen:], payload)
	if err := unix.Sendto(s.fd, pkt, 0, &unix.SockaddrInet4{Addr: d4}); err != nil {
		t.Fatalf("raw send: %v", err)
	}
	s.sent += uint64(len(payload))
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// TestSpoofedReflection: CHALLENGEs and ALIVEs whose source address is
// forged to be the victim's. The node may answer each CHALLENGE with a
// RESPONSE of the same size and challenge the victim, nothing more.
func TestSpoofedReflection(t *testing.T) {
	sp := newSpoofer(t)
	tg := startNode(t, nil, nil)
	v := newVictim(t)
	a := newAttacker(t) // only to build frames
	n := pick(1000, 10000)
	c := codec.Challenge{Time: uint64(time.Now().UnixMilli()), Addr: tg.Addr()}
	for i := range n {
		h := a.header(codec.TypeChallenge, 0, 0)
		h.PayloadLen = codec.ChallengeLen
		sp.send(t, v.addr, tg.Addr(), codec.AppendChallenge(codec.AppendHeader(nil, &h), &c))
		sp.send(t, v.addr, tg.Addr(), a.alive(a.header(codec.TypeAlive, randID(), 1), netip.AddrPort{}, nil))
		if i%256 == 0 {
			waitFor(t, 30*time.Second, "node to keep up", func() bool { return tg.Stats().FramesReceived >= uint64(2*i)*9/10 })
		}
	}
	observe(pick(time.Second, 5*time.Second))
	ratio := float64(v.bytes.Load()) / float64(sp.sent)
	s := tg.Stats()
	t.Logf("figure: spoofed reflection: %d CHALLENGEs + %d ALIVEs from the victim's address (%d B): victim got %d B in %d datagrams (%d RESPONSEs, %d challenges): %.2fx",
		n, n, sp.sent, v.bytes.Load(), v.datagrams.Load(), s.ResponsesSent, s.ChallengesSent, ratio)
	if ratio > maxAmplification {
		t.Errorf("victim received %.2fx what the attacker sent (bound %.0fx)", ratio, maxAmplification)
	}
	if s.MembersAlive != 0 {
		t.Errorf("%d members from spoofed ALIVEs", s.MembersAlive)
	}
}

// TestSpoofedLeave: a LEAVE forged from the member's own address with a
// plausible packet number: plaintext cannot tell it from the real one
// (SECURITY.md), but the member must be back within a few heartbeats (its
// next ALIVE is challenged and answered) and keep receiving.
func TestSpoofedLeave(t *testing.T) {
	sp := newSpoofer(t)
	tg := startNode(t, nil, nil)
	legit := startNode(t, []string{tg.Addr().String()}, nil)
	waitFor(t, 10*time.Second, "member to join", func() bool { return tg.member(legit.ID()) && legit.member(tg.ID()) })
	a := newAttacker(t)
	// A plausible packet number: a little past what the member has sent
	// (an attacker that sees its traffic knows it).
	h := a.header(codec.TypeLeave, legit.ID(), legit.Epoch())
	h.Packet = legit.Stats().FramesSent + 1000
	sp.send(t, legit.Addr(), tg.Addr(), a.leave(h, 1))
	huge := h
	huge.Packet = 1 << 62
	sp.send(t, legit.Addr(), tg.Addr(), a.leave(huge, 1))
	left := eventually(5*testHeartbeat, func() bool { return !tg.member(legit.ID()) })
	back := waitFor(t, 5*time.Second, "member back", func() bool { return tg.member(legit.ID()) })
	if err := legit.Invalidate("after-spoofed-leave"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "member's invalidation", func() bool { _, ok := tg.appliedAt("after-spoofed-leave"); return ok })
	t.Logf("figure: spoofed LEAVE from the member's address: taken out %v, back after %v; drops implausible %d forged %d",
		left, back, tg.Stats().Drops[engine.DropImplausible], tg.Stats().Drops[engine.DropForged])
	if back > 10*testHeartbeat {
		t.Errorf("member back after %v, bound %v", back, 10*testHeartbeat)
	}
}
