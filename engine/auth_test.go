package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func keyedOptions(t testing.TB, port int, key []byte, seeds ...int) Options {
	t.Helper()
	kr, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	o := unicastOptions(port, seeds...)
	o.Keyring = kr
	return o
}

// forge builds a frame from origin as an outsider (or a captured member)
// would: sealed with key when key is non-nil.
func forge(cluster uint64, key []byte, h codec.Header, payload func([]byte) []byte) []byte {
	h.Cluster = cluster
	if key != nil {
		h.Flags |= codec.FlagAuth
	}
	body := payload(nil)
	h.PayloadLen = uint16(len(body))
	b := codec.AppendHeader(make([]byte, 0, codec.HeaderLen+len(body)+codec.TagLen), &h)
	b = append(b, body...)
	if key != nil {
		kr, _ := NewKeyring(key)
		s := &sealer{ring: kr, id: h.Origin, epoch: h.Epoch}
		b = s.seal(b, h.Packet, new(sealScratch))
	}
	return b
}

func dataPayload(keys ...string) (func([]byte) []byte, uint16) {
	return func(dst []byte) []byte {
		for _, k := range keys {
			dst = codec.AppendRecord(dst, []byte(k), codec.RecordExact)
		}
		return dst
	}, uint16(len(keys))
}

func alivePayload(addr netip.AddrPort) func([]byte) []byte {
	return func(dst []byte) []byte {
		return codec.AppendAlive(dst, &codec.Alive{Incarnation: 1, Addr: addr})
	}
}

func sendRaw(t testing.TB, to netip.AddrPort, frames ...[]byte) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, f := range frames {
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeyedMeshDelivers(t *testing.T) {
	p := freePorts(t, 3)
	k := testKey(7)
	a := startNode(t, keyedOptions(t, p[0], k))
	b := startNode(t, keyedOptions(t, p[1], k, p[0]))
	c := startNode(t, keyedOptions(t, p[2], k, p[0]))
	lb, lc := newKeyLog(b), newKeyLog(c)
	for _, n := range []*Node{a, b, c} {
		waitFor(t, 5*time.Second, "keyed mesh", func() bool { return aliveCount(n) == 2 })
	}
	a.Invalidate("sealed")
	waitFor(t, 5*time.Second, "sealed delivery", func() bool { return lb.count("sealed") == 1 && lc.count("sealed") == 1 })
	if d := b.Stats().Drops[DropAuth]; d != 0 {
		t.Fatalf("%d frames failed authentication inside one keyed mesh", d)
	}
}

func TestOutsidersHaveNoEffect(t *testing.T) {
	p := freePorts(t, 2)
	k := testKey(1)
	a := startNode(t, keyedOptions(t, p[0], k))
	la := newKeyLog(a)
	to := a.LocalAddr()
	attacker := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", p[1]))
	pay, count := dataPayload("victim")
	hdr := func(t codec.FrameType, seq uint64) codec.Header {
		return codec.Header{Type: t, HopLimit: 1, Origin: 0xBAD, Epoch: 1, Seq: seq, Packet: seq}
	}
	data := hdr(codec.TypeData, 1)
	data.Count = count
	cases := []struct {
		name   string
		frames [][]byte
		reason DropReason
	}{
		{"no key", [][]byte{
			forge(a.cfg.cluster, nil, data, pay),
			forge(a.cfg.cluster, nil, hdr(codec.TypeAlive, 2), alivePayload(attacker)),
		}, DropUnauthenticated},
		{"wrong key", [][]byte{
			forge(a.cfg.cluster, testKey(2), data, pay),
			forge(a.cfg.cluster, testKey(2), hdr(codec.TypeAlive, 2), alivePayload(attacker)),
		}, DropAuth},
		{"other cluster", [][]byte{
			forge(codec.ClusterHash("other"), k, data, pay),
			forge(codec.ClusterHash("other"), k, hdr(codec.TypeAlive, 2), alivePayload(attacker)),
		}, DropWrongCluster},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.Stats().Drops[tc.reason]
			sendRaw(t, to, tc.frames...)
			waitFor(t, 5*time.Second, "drops counted", func() bool {
				return a.Stats().Drops[tc.reason] == before+uint64(len(tc.frames))
			})
			if la.distinct() != 0 {
				t.Fatal("an outsider's invalidation was applied")
			}
			if m := a.Members(); len(m) != 0 {
				t.Fatalf("an outsider changed membership: %+v", m)
			}
		})
	}
	if s := a.Stats(); s.NacksSent != 0 || s.Retransmitted != 0 {
		t.Fatalf("outsiders caused repair traffic: %+v", s)
	}
}

func TestReplayHasNoEffect(t *testing.T) {
	p := freePorts(t, 2)
	k := testKey(3)
	a := startNode(t, keyedOptions(t, p[0], k))
	la := newKeyLog(a)
	ev := newEventLog(a)
	to := a.LocalAddr()
	member := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", p[1]))
	var memberEpoch atomic.Uint64
	memberEpoch.Store(5)
	responder(t, member, a.cfg.cluster, k, 0x600D, memberEpoch.Load) // the member answers challenges
	pay, count := dataPayload("captured")
	// A member's genuine frames, captured on the wire.
	alive := forge(a.cfg.cluster, k, codec.Header{Type: codec.TypeAlive, HopLimit: 1, Origin: 0x600D, Epoch: 5, Packet: 1}, alivePayload(member))
	data := forge(a.cfg.cluster, k, codec.Header{Type: codec.TypeData, HopLimit: 1, Origin: 0x600D, Epoch: 5, Seq: 1, Packet: 2, Count: count}, pay)
	sendRaw(t, to, alive, data)
	waitFor(t, 5*time.Second, "genuine frames", func() bool { return la.count("captured") == 1 && aliveCount(a) == 1 })

	// Replayed later: nothing happens.
	sendRaw(t, to, alive, data)
	waitFor(t, 5*time.Second, "replays dropped", func() bool {
		s := a.Stats()
		return s.Drops[DropReplay] == 1 && s.Duplicates == 1
	})
	if la.count("captured") != 1 {
		t.Fatal("replayed DATA applied again")
	}
	// After the member restarts (epoch 6), its old epoch's frames are void.
	memberEpoch.Store(6)
	alive6 := forge(a.cfg.cluster, k, codec.Header{Type: codec.TypeAlive, HopLimit: 1, Origin: 0x600D, Epoch: 6, Packet: 1}, alivePayload(member))
	sendRaw(t, to, alive6)
	waitFor(t, 5*time.Second, "restart seen", func() bool { return countEvents(ev, EventJoin, 0x600D) == 2 })
	old := forge(a.cfg.cluster, k, codec.Header{Type: codec.TypeData, HopLimit: 1, Origin: 0x600D, Epoch: 5, Seq: 2, Packet: 3, Count: count}, pay)
	sendRaw(t, to, old)
	waitFor(t, 5*time.Second, "old epoch dropped", func() bool { return a.Stats().Drops[DropOldEpoch] == 1 })
	if la.count("captured") != 1 {
		t.Fatal("old-epoch frame applied")
	}
}

func TestKeyRotationLosesNothing(t *testing.T) {
	p := freePorts(t, 3)
	k1, k2 := testKey(0x11), testKey(0x22)
	nodes := []*Node{
		startNode(t, keyedOptions(t, p[0], k1)),
		startNode(t, keyedOptions(t, p[1], k1, p[0])),
		startNode(t, keyedOptions(t, p[2], k1, p[0])),
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "mesh", func() bool { return aliveCount(n) == 2 })
	}
	var got [3]atomic.Int64
	for i, n := range nodes {
		n.OnInvalidate(func(inv Invalidation) { got[i].Add(1) })
	}
	var published atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // node 0 publishes throughout the rotation
		defer wg.Done()
		key := make([]byte, 8)
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			binary.BigEndian.PutUint64(key, i)
			if nodes[0].InvalidateBytes(key) == nil {
				published.Add(1)
			}
			if i%64 == 0 {
				time.Sleep(100 * time.Microsecond) // a steady stream, not a flood
			}
		}
	}()
	step := func(what string, fn func(*Keyring) error) {
		for _, n := range nodes {
			if err := fn(n.cfg.Keyring); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			before := published.Load()
			waitFor(t, 5*time.Second, "traffic during "+what, func() bool { return published.Load() > before+500 })
		}
	}
	step("install", func(r *Keyring) error { return r.Install(k2) })
	step("use primary", func(r *Keyring) error { return r.UsePrimary(k2) })
	step("remove old", func(r *Keyring) error { return r.Remove(k1) })
	close(stop)
	wg.Wait()
	total := published.Load()
	for i := 1; i < 3; i++ {
		waitFor(t, 10*time.Second, "every invalidation", func() bool { return got[i].Load() == total })
		s := nodes[i].Stats()
		if s.Drops[DropAuth] != 0 || s.GapEvents() != 0 {
			t.Fatalf("node %d: auth drops %d, gap events %d", i, s.Drops[DropAuth], s.GapEvents())
		}
	}
	t.Logf("%d invalidations across a full key rotation, none lost", total)
	if ks := nodes[0].cfg.Keyring.Keys(); len(ks) != 1 || !bytes.Equal(ks[0], k2) {
		t.Fatal("rotation did not leave k2 alone")
	}
}

func TestKeyringErrors(t *testing.T) {
	if _, err := NewKeyring(); err != ErrEmptyRing {
		t.Errorf("empty: %v", err)
	}
	if _, err := NewKeyring([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
	kr, _ := NewKeyring(testKey(1))
	if err := kr.Remove(testKey(1)); err != ErrPrimaryKey {
		t.Errorf("remove primary: %v", err)
	}
	if err := kr.UsePrimary(testKey(9)); err != ErrNoKey {
		t.Errorf("unknown primary: %v", err)
	}
	if _, err := New(Options{Auth: AuthAcceptPlaintext, UnicastOnly: true}); err == nil {
		t.Error("Auth without Keyring accepted")
	}
}

// Per-frame step gates for sealing and opening alone (the whole-path and
// sender/reader step gates in alloc_test.go cover them in place).
func TestSealOpenZeroAllocPerFrame(t *testing.T) {
	kr, _ := NewKeyring(testKey(4))
	s := &sealer{ring: kr, id: 1, epoch: 2}
	o := &opener{ring: kr, cache: map[[2]uint64]*openKeys{}, scratch: make([]byte, 0, codec.MaxFrameSize)}
	pay, count := dataPayload("k1", "k2")
	h := codec.Header{Type: codec.TypeData, Flags: codec.FlagAuth, HopLimit: 1, Origin: 1, Epoch: 2, Seq: 1, Packet: 1, Count: count}
	body := pay(nil)
	h.PayloadLen = uint16(len(body))
	plain := append(codec.AppendHeader(nil, &h), body...)
	buf := make([]byte, 0, len(plain)+codec.TagLen)
	var sc sealScratch
	sealed := s.seal(append(buf[:0], plain...), h.Packet, &sc)
	if _, ok := o.open(&h, sealed); !ok {
		t.Fatal("open failed")
	}
	if a := testing.AllocsPerRun(200, func() { s.seal(append(buf[:0], plain...), h.Packet, &sc) }); a != 0 {
		t.Fatalf("seal allocates %.1f per frame", a)
	}
	sealed = s.seal(append(buf[:0], plain...), h.Packet, &sc)
	if a := testing.AllocsPerRun(200, func() { o.open(&h, sealed) }); a != 0 {
		t.Fatalf("open allocates %.1f per frame", a)
	}
}

// TestAuthRolloutModes checks what the AuthMode doc promises: rolling a
// key into a running plaintext mesh takes three restarts (plaintext →
// AuthSendPlaintext → AuthAcceptPlaintext → AuthRequired), and nodes one
// step apart form a mesh and deliver both ways, while nodes further apart
// do not, with the drop counted.
func TestAuthRolloutModes(t *testing.T) {
	const plain = AuthMode(255) // no keyring
	key := testKey(8)
	options := func(mode AuthMode, port int, seeds ...int) Options {
		if mode == plain {
			return unicastOptions(port, seeds...)
		}
		o := keyedOptions(t, port, key, seeds...)
		o.Auth = mode
		return o
	}
	name := map[AuthMode]string{plain: "plaintext", AuthSendPlaintext: "send-plaintext", AuthAcceptPlaintext: "accept-plaintext", AuthRequired: "required"}
	for _, tc := range []struct {
		x, y AuthMode
		// drops: when the pair is too far apart, the reason y (or x)
		// counts; zero when they must mesh.
		xDrop, yDrop DropReason
	}{
		{x: plain, y: AuthSendPlaintext},
		{x: AuthSendPlaintext, y: AuthAcceptPlaintext},
		{x: AuthAcceptPlaintext, y: AuthRequired},
		{x: plain, y: AuthAcceptPlaintext, xDrop: DropAuth},                 // x cannot open y's sealed frames
		{x: AuthSendPlaintext, y: AuthRequired, yDrop: DropUnauthenticated}, // y refuses x's plaintext
		{x: plain, y: AuthRequired, xDrop: DropAuth, yDrop: DropUnauthenticated},
	} {
		t.Run(name[tc.x]+"+"+name[tc.y], func(t *testing.T) {
			p := freePorts(t, 2)
			x := startNode(t, options(tc.x, p[0], p[1]))
			y := startNode(t, options(tc.y, p[1], p[0]))
			lx, ly := newKeyLog(x), newKeyLog(y)
			if tc.xDrop == 0 && tc.yDrop == 0 {
				waitFor(t, 5*time.Second, "mesh", func() bool { return aliveCount(x) == 1 && aliveCount(y) == 1 })
				x.Invalidate("from-x")
				y.Invalidate("from-y")
				waitFor(t, 5*time.Second, "delivery both ways", func() bool { return ly.count("from-x") == 1 && lx.count("from-y") == 1 })
				for _, n := range []*Node{x, y} {
					if s := n.Stats(); s.Drops[DropAuth] != 0 || s.Drops[DropUnauthenticated] != 0 {
						t.Errorf("node dropped frames of a compatible peer: auth %d unauthenticated %d", s.Drops[DropAuth], s.Drops[DropUnauthenticated])
					}
				}
				return
			}
			for _, side := range []struct {
				n    *Node
				drop DropReason
			}{{x, tc.xDrop}, {y, tc.yDrop}} {
				if side.drop == 0 {
					continue
				}
				waitFor(t, 5*time.Second, "heartbeats dropped as "+side.drop.String(), func() bool { return side.n.Stats().Drops[side.drop] >= 3 })
				if m := aliveCount(side.n); m != 0 {
					t.Errorf("a node that drops its peer's frames (%v) counts %d members", side.drop, m)
				}
			}
			// An invalidation towards the dropping side is not applied: once
			// the publisher's frame is written, two more drops at the
			// receiver mean it was handled (one socket pair delivers in
			// order), so its absence then is conclusive.
			ran := 0
			for _, d := range []struct {
				from, to *Node
				log      *keyLog
				drop     DropReason
			}{{x, y, ly, tc.yDrop}, {y, x, lx, tc.xDrop}} {
				if d.drop == 0 || aliveCount(d.from) == 0 {
					continue // nothing is sent to a node its publisher does not count as a member
				}
				ran++
				d.from.Invalidate("crossing")
				waitFor(t, 5*time.Second, "frame written", func() bool { return d.from.hwm.Load() >= 1 })
				seen := d.to.Stats().Drops[d.drop]
				waitFor(t, 5*time.Second, "the frame handled", func() bool { return d.to.Stats().Drops[d.drop] >= seen+2 })
				if c := d.log.count("crossing"); c != 0 {
					t.Errorf("an invalidation crossed from %s to a node that drops its frames", name[map[*Node]AuthMode{x: tc.x, y: tc.y}[d.from]])
				}
			}
			if oneWay := tc.xDrop == 0 || tc.yDrop == 0; oneWay && ran == 0 {
				// The accepting side hears its peer but cannot validate its
				// address (the peer drops the challenge): it knows it as an
				// unvalidated member and sends it nothing else.
				acc := x
				if tc.xDrop != 0 {
					acc = y
				}
				waitFor(t, 5*time.Second, "the peer heard but unvalidated", func() bool { return acc.Stats().MembersUnvalidated == 1 })
			}
		})
	}
}
