package engine

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// responder answers every CHALLENGE reaching addr with a RESPONSE from
// origin at the epoch epoch() returns, sealed with key when it is set: a
// stand-in for the member a test forges frames of.
func responder(t testing.TB, addr netip.AddrPort, cluster uint64, key []byte, origin uint64, epoch func() uint64) *atomic.Int64 {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	var answered atomic.Int64
	var o *opener
	if key != nil {
		kr, err := NewKeyring(key)
		if err != nil {
			t.Fatal(err)
		}
		o = &opener{ring: kr, cache: make(map[[2]uint64]*openKeys), scratch: make([]byte, 0, codec.MaxFrameSize)}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, codec.MaxFrameSize)
		var packet uint64 = 1 << 30
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			h, _, err := codec.ParseHeader(buf[:n])
			if err != nil || h.Type != codec.TypeChallenge {
				continue
			}
			payload := buf[codec.HeaderLen : codec.HeaderLen+int(h.PayloadLen)]
			if h.Flags&codec.FlagAuth != 0 {
				if o == nil {
					continue
				}
				pt, ok := o.open(&h, buf[:n])
				if !ok {
					continue
				}
				payload = pt
			}
			packet++
			resp := forge(cluster, key, codec.Header{Type: codec.TypeResponse, HopLimit: 1, Origin: origin, Epoch: epoch(), Packet: packet},
				func(dst []byte) []byte { return append(dst, payload...) })
			if _, err := c.WriteToUDPAddrPort(resp, from); err == nil {
				answered.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return &answered
}

func TestCookie(t *testing.T) {
	n := startNode(t, quietOptions(unicastOptions(freePorts(t, 1)[0])))
	v := &n.val
	addr := netip.MustParseAddrPort("127.0.0.9:7946")
	now := time.Now()
	c := codec.Challenge{Time: uint64(now.UnixMilli()), Addr: addr}
	v.mu.Lock()
	v.cookieLocked(0, addr, c.Time, &c.Cookie)
	v.mu.Unlock()
	if !v.verify(&c, now) {
		t.Fatal("a fresh cookie did not verify")
	}
	bad := c
	bad.Addr = netip.MustParseAddrPort("127.0.0.9:7947")
	if v.verify(&bad, now) {
		t.Fatal("a cookie verified for another address")
	}
	bad = c
	bad.Cookie[0] ^= 1
	if v.verify(&bad, now) {
		t.Fatal("a altered cookie verified")
	}
	if v.verify(&c, now.Add(cookieLifetime+time.Millisecond)) {
		t.Fatal("an expired cookie verified")
	}
	if v.verify(&c, now.Add(-cookieFutureSlack-time.Millisecond)) {
		t.Fatal("a cookie from the future verified")
	}
	v.mu.Lock()
	v.rotateLocked(now)
	v.mu.Unlock()
	if !v.verify(&c, now) {
		t.Fatal("a cookie of the previous secret did not verify")
	}
	v.mu.Lock()
	v.rotateLocked(now)
	v.mu.Unlock()
	if v.verify(&c, now) {
		t.Fatal("a cookie two rotations old verified")
	}
}

func TestChallengePacing(t *testing.T) {
	n := startNode(t, quietOptions(unicastOptions(freePorts(t, 1)[0])))
	v := &n.val
	addr := netip.MustParseAddrPort("127.0.0.9:7946")
	now := time.Now()
	size := codec.HeaderLen + codec.ChallengeLen
	credit := size - 1
	if v.challenge(addr, true, &credit, now) {
		t.Fatal("challenged beyond the packet's credit")
	}
	credit = 100 * size
	sent := 0
	for i := range 100 {
		at := now.Add(time.Duration(i) * challengeRetry / 2)
		if v.challenge(addr, true, &credit, at) {
			sent++
		}
	}
	if sent != challengeAttempts {
		t.Fatalf("%d challenges in a window, want %d", sent, challengeAttempts)
	}
	if !v.challenge(addr, true, &credit, now.Add(challengeWindow)) {
		t.Fatal("no challenge in the next window")
	}
	if v.challenge(n.cfg.advertise, true, &credit, now) {
		t.Fatal("challenged its own address")
	}
}

// TestForgedMemberGetsNothing: an ALIVE advertising an address that never
// answers earns that address one challenge, no heartbeat, no membership.
func TestForgedMemberGetsNothing(t *testing.T) {
	p := freePorts(t, 3)
	n := startNode(t, unicastOptions(p[0], p[2])) // a silent seed: heartbeat rounds happen
	victim, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p[1]})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	got := make(chan codec.FrameType, 64)
	go func() {
		buf := make([]byte, codec.MaxFrameSize)
		for {
			k, err := victim.Read(buf)
			if err != nil {
				close(got)
				return
			}
			if h, _, err := codec.ParseHeader(buf[:k]); err == nil {
				got <- h.Type
			}
		}
	}()
	alive := forge(n.cfg.cluster, nil, codec.Header{Type: codec.TypeAlive, HopLimit: 1, Origin: 0xBAD, Epoch: 1, Packet: 1},
		alivePayload(netip.MustParseAddrPort(victim.LocalAddr().String())))
	sendRaw(t, n.LocalAddr(), alive)
	waitFor(t, 5*time.Second, "a challenge", func() bool { return n.Stats().ChallengesSent == 1 })
	if typ := <-got; typ != codec.TypeChallenge {
		t.Fatalf("victim got %v, want only a CHALLENGE", typ)
	}
	hb := n.Stats().HeartbeatsSent
	waitFor(t, 5*time.Second, "two heartbeat rounds", func() bool { return n.Stats().HeartbeatsSent >= hb+2 })
	select {
	case typ := <-got:
		t.Fatalf("victim got a %v after its challenge", typ)
	default:
	}
	if s := n.Stats(); s.MembersAlive != 0 || s.MembersUnvalidated > 1 || len(n.Members()) != 0 {
		t.Fatalf("alive %d unvalidated %d members %v", s.MembersAlive, s.MembersUnvalidated, n.Members())
	}
}
