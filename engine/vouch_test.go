package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// TestVouchRules: with a keyring, a member first heard of in an
// authenticated digest from a validated member is taken as validated at
// once, with no challenge of our own, and its first trusted frame sets its
// packet baseline; in plaintext it waits for its address to answer. A
// validated member's comeback is never vouched for.
func TestVouchRules(t *testing.T) {
	now := time.Now()
	d := codec.DigestEntry{ID: 7, Epoch: 3, Incarnation: 2, Addr: phantom(7), State: StateAlive}

	plain := capTable()
	if _, ch := plain.gossip(&d, 1, 0, false, now); ch != phantom(7) {
		t.Fatalf("plaintext gossip of a newcomer: challenge %v, want its address", ch)
	}
	var s Stats
	plain.count(&s)
	if s.MembersAlive != 0 || s.MembersUnvalidated != 1 || s.Vouched != 0 {
		t.Fatalf("plaintext: alive %d unvalidated %d vouched %d, want 0 1 0", s.MembersAlive, s.MembersUnvalidated, s.Vouched)
	}

	m := capTable()
	if _, ch := m.gossip(&d, 1, 0, true, now); ch.IsValid() {
		t.Fatalf("authenticated gossip of a newcomer asked for a challenge to %v", ch)
	}
	s = Stats{}
	m.count(&s)
	if s.MembersAlive != 1 || s.MembersUnvalidated != 0 || s.Vouched != 1 {
		t.Fatalf("authenticated: alive %d unvalidated %d vouched %d, want 1 0 1", s.MembersAlive, s.MembersUnvalidated, s.Vouched)
	}
	if a, ok := m.viewMember(7); !ok || a != phantom(7) {
		t.Fatalf("vouched member not in the fan-out view at its address: %v %v", a, ok)
	}

	// Its packet numbers are news: the first trusted frame sets the
	// baseline whatever it is; from then on the plausibility window holds.
	h := codec.Header{Type: codec.TypeAlive, Origin: 7, Epoch: 3, Packet: 1 << 40, Flags: codec.FlagAuth}
	if ok, why, _ := m.admit(&h, nil, phantom(7), true, now); !ok {
		t.Fatalf("first authenticated frame of a vouched member refused: %v", why)
	}
	h.Packet = 1<<40 + 1<<30
	if ok, _, _ := m.admit(&h, nil, phantom(7), true, now); ok {
		t.Fatal("a packet number 2^30 past the baseline was taken")
	}

	// Declared dead, then named alive again by an authenticated digest: a
	// comeback waits for the member's own RESPONSE.
	m.mu.Lock()
	e := m.members[7]
	e.State, e.stateSince = StateDead, now
	m.syncLocked(e)
	m.mu.Unlock()
	d.Incarnation = 3
	if _, ch := m.gossip(&d, 1, 0, true, now); ch != phantom(7) {
		t.Fatalf("authenticated gossip of a dead member's comeback: challenge %v, want its address", ch)
	}
	if s = (Stats{}); true {
		m.count(&s)
	}
	if s.MembersDead != 1 || s.Vouched != 1 {
		t.Fatalf("after a vouched comeback claim: dead %d vouched %d, want 1 1", s.MembersDead, s.Vouched)
	}
}

// TestVouchedMeshForms: three nodes with one keyring, b and c seeded only
// with a, learn each other from a's gossip and take each other on its
// word (no challenge between them is needed), and invalidations flow
// between them.
func TestVouchedMeshForms(t *testing.T) {
	ports := freePorts(t, 3)
	key := testKey(9)
	a := startNode(t, keyedOptions(t, ports[0], key))
	b := startNode(t, keyedOptions(t, ports[1], key, ports[0]))
	c := startNode(t, keyedOptions(t, ports[2], key, ports[0]))
	waitFor(t, 10*time.Second, "every node to list the two others alive", func() bool {
		return aliveCount(a) == 2 && aliveCount(b) == 2 && aliveCount(c) == 2
	})
	if v := b.Stats().Vouched + c.Stats().Vouched; v == 0 {
		t.Fatal("b and c met without either vouching for the other: they challenged each other")
	}
	logC := newKeyLog(c)
	if err := b.Invalidate("vouched-key"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "c to apply b's invalidation", func() bool { return logC.count("vouched-key") == 1 })
}

// TestVouchesOnlyFreshAuthenticated: only an authenticated frame that is
// its validated sender's newest vouches; a replayed older one, a
// plaintext one or a stranger's does not.
func TestVouchesOnlyFreshAuthenticated(t *testing.T) {
	m := capTable()
	now := time.Now()
	m.validated(2, 1, phantom(2), phantom(2), 10, now)
	for _, c := range []struct {
		name string
		h    codec.Header
		want bool
	}{
		{"newest, authenticated", codec.Header{Origin: 2, Epoch: 1, Packet: 10, Flags: codec.FlagAuth}, true},
		{"older (a replay)", codec.Header{Origin: 2, Epoch: 1, Packet: 9, Flags: codec.FlagAuth}, false},
		{"plaintext", codec.Header{Origin: 2, Epoch: 1, Packet: 10}, false},
		{"another epoch", codec.Header{Origin: 2, Epoch: 2, Packet: 10, Flags: codec.FlagAuth}, false},
		{"unknown sender", codec.Header{Origin: 3, Epoch: 1, Packet: 10, Flags: codec.FlagAuth}, false},
	} {
		if got := m.vouches(&c.h); got != c.want {
			t.Errorf("%s: vouches %v, want %v", c.name, got, c.want)
		}
	}
}

// TestStrangerPingRefutes: with a keyring, a ping from a key holder this
// node has not validated yet (it learned of us first) that says we are
// suspected makes us refute at once: a higher incarnation. In plaintext
// the same ping is acked and its news ignored.
func TestStrangerPingRefutes(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		ports := freePorts(t, 1)
		key := testKey(5)
		o := unicastOptions(ports[0])
		if keyed {
			o = keyedOptions(t, ports[0], key)
		}
		a := startNode(t, o)
		inc0 := a.inc.Load()
		h := codec.Header{Type: codec.TypeProbe, Origin: 0xbeef, Epoch: 1, Packet: 1, Count: 1, HopLimit: 1}
		pay := func(dst []byte) []byte {
			dst = codec.AppendProbe(dst, &codec.Probe{Kind: codec.ProbePing, Seq: 9, Target: a.ID()})
			return codec.AppendUpdate(dst, &codec.Update{ID: a.ID(), Epoch: a.Epoch(), Incarnation: inc0, Addr: a.Addr(), State: StateSuspect, From: 0xbeef})
		}
		k := key
		if !keyed {
			k = nil
		}
		dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[0]))
		if keyed {
			sendRaw(t, dst, forge(a.cfg.cluster, k, h, pay))
			waitFor(t, 5*time.Second, "the refutation", func() bool { return a.inc.Load() > inc0 })
			continue
		}
		// Plaintext: the ping is acked (a drop is counted for the
		// stranger) and the suspicion is not read.
		before := a.Stats().Drops[DropUnknownMember]
		sendRaw(t, dst, forge(a.cfg.cluster, nil, h, pay))
		waitFor(t, 5*time.Second, "the stranger's ping to be handled", func() bool { return a.Stats().Drops[DropUnknownMember] > before })
		if a.inc.Load() != inc0 {
			t.Fatalf("plaintext stranger's ping raised the incarnation %d -> %d", inc0, a.inc.Load())
		}
	}
}

// TestSwimModeWithoutTick: a table that grew past DirectLimit since the
// last tick (one push-pull names the whole mesh, and with a keyring its
// members are taken at once) is in SWIM mode when the heartbeat loop next
// asks, not a tick later: else that round heartbeats every member.
func TestSwimModeWithoutTick(t *testing.T) {
	m := capTable()
	m.cfg.DirectLimit, m.cfg.Heartbeat = 4, 100*time.Millisecond
	now := time.Now()
	m.tick(now)
	if m.swimming() {
		t.Fatal("empty table in SWIM mode")
	}
	for i := 2; i < 12; i++ {
		d := codec.DigestEntry{ID: uint64(i), Epoch: 1, Addr: phantom(i), State: StateAlive}
		m.gossip(&d, 1, 0, true, now)
	}
	if !m.swimming() {
		t.Fatal("10 live members over a DirectLimit of 4, no tick since: not in SWIM mode")
	}
}
