package adversary

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// maxAmplification is the bound of issue 13: toward an address that has
// not answered a challenge, a node sends at most 3× what the attacker sent.
const maxAmplification = 3.0

// victims is a set of victim sockets on 127.0.0.2, one address each.
type victims []*victim

func newVictims(t testing.TB, n int) victims {
	vs := make(victims, n)
	for i := range vs {
		vs[i] = newVictim(t)
	}
	return vs
}

func (vs victims) bytes() (b, d uint64) {
	for _, v := range vs {
		b += v.bytes.Load()
		d += v.datagrams.Load()
	}
	return b, d
}

// observe lets a measurement window pass: the node keeps running and the
// victims keep counting. Not synchronisation: nothing waits on a state.
func observe(d time.Duration) { time.Sleep(d) }

// TestAmplificationDigest: forged ALIVEs whose digests name members at
// victim addresses. The node may challenge each address, nothing more.
func TestAmplificationDigest(t *testing.T) {
	tg := startNode(t, nil, nil)
	a := newAttacker(t)
	members := pick(1016, 5000)
	window := pick(2*time.Second, 30*time.Second)
	vs := newVictims(t, members)
	// The attacker first gets itself validated (it answers the challenge
	// to its own address), so its digests come from a member.
	if !a.validate(tg) {
		t.Log("attacker not validated: its digests come from a stranger")
	}
	room := codec.MaxDigestEntries(codec.DefaultMaxFrameSize, false)
	var digest []codec.DigestEntry
	for i, v := range vs {
		digest = append(digest, codec.DigestEntry{ID: randID(), Epoch: 1, Incarnation: 1, Addr: v.addr, State: codec.StateAlive})
		if len(digest) == room || i == len(vs)-1 {
			a.send(tg.Addr(), a.alive(a.header(codec.TypeAlive, 0, 0), netip.AddrPort{}, digest))
			digest = digest[:0]
		}
	}
	observe(window)
	got, datagrams := vs.bytes()
	ratio := float64(got) / float64(a.sent.Load())
	t.Logf("figure: digest amplification: %d forged members, attacker %d B, victims %d B in %d datagrams over %v: %.1fx",
		members, a.sent.Load(), got, datagrams, window, ratio)
	if ratio > maxAmplification {
		t.Errorf("victims received %.1fx what the attacker sent (bound %.0fx)", ratio, maxAmplification)
	}
}

// TestAmplificationAdvertised: one forged member whose own ALIVE advertises
// the victim's address, then NACKs for everything the node ever sent.
func TestAmplificationNack(t *testing.T) {
	tg := startNode(t, nil, nil)
	v := newVictim(t)
	a := newAttacker(t)
	// Fill the retransmit ring: one record of 700 bytes per frame.
	frames := pick(2000, 4000)
	key := strings.Repeat("k", 700)
	for i := range frames {
		if err := tg.Invalidate(key + itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "frames sent", func() bool { return tg.Stats().RecordsSent >= uint64(frames) })
	a.send(tg.Addr(), a.alive(a.header(codec.TypeAlive, 0, 0), v.addr, nil))
	nacks := pick(100, 1000)
	for range nacks {
		a.send(tg.Addr(), a.nack(a.header(codec.TypeNack, 0, 0), tg.ID(), tg.Epoch(), codec.SeqRange{First: 1, Last: 100000}))
	}
	observe(pick(time.Second, 10*time.Second))
	ratio := float64(v.bytes.Load()) / float64(a.sent.Load())
	s := tg.Stats()
	t.Logf("figure: NACK amplification: %d NACKs, attacker %d B, victim %d B in %d datagrams (%d retransmitted): %.1fx",
		nacks, a.sent.Load(), v.bytes.Load(), v.datagrams.Load(), s.Retransmitted, ratio)
	if ratio > maxAmplification {
		t.Errorf("victim received %.1fx what the attacker sent (bound %.0fx)", ratio, maxAmplification)
	}

	// The same NACKs from a validated attacker, for itself: answered, but
	// within its own byte budget (RetransmitBuffer/8 deep, refilled at
	// RetransmitBuffer/4 per second; 4 MiB by default).
	if !a.validate(tg) {
		t.Fatal("attacker not validated")
	}
	sent0, recv0 := a.sent.Load(), a.recv.Load()
	start := time.Now()
	for range nacks {
		a.send(tg.Addr(), a.nack(a.header(codec.TypeNack, 0, 0), tg.ID(), tg.Epoch(), codec.SeqRange{First: 1, Last: 100000}))
	}
	window := pick(time.Second, 10*time.Second)
	observe(window)
	got := a.recv.Load() - recv0
	const rtBuffer = 4 << 20
	bound := rtBuffer/8 + int(time.Since(start).Seconds()*rtBuffer/4) + 64<<10 // + heartbeats
	t.Logf("figure: NACK budget: validated attacker, %d NACKs (%d B): %d B retransmitted to it in %v (budget %d B); %.0fx",
		nacks, a.sent.Load()-sent0, got, window, bound, float64(got)/float64(a.sent.Load()-sent0))
	if got > uint64(bound) {
		t.Errorf("validated attacker got %d B of repairs, budget %d B", got, bound)
	}
}

// TestAmplificationAdvertised: ALIVEs, each from a new forged id, that
// advertise the victim's address: heartbeats must not follow.
func TestAmplificationAdvertised(t *testing.T) {
	tg := startNode(t, nil, nil)
	v := newVictim(t)
	a := newAttacker(t)
	ids := pick(200, 2000)
	for range ids {
		a.send(tg.Addr(), a.alive(a.header(codec.TypeAlive, randID(), 1), v.addr, nil))
	}
	observe(pick(2*time.Second, 20*time.Second))
	ratio := float64(v.bytes.Load()) / float64(a.sent.Load())
	t.Logf("figure: advertised-address amplification: %d forged ids, attacker %d B, victim %d B in %d datagrams: %.1fx",
		ids, a.sent.Load(), v.bytes.Load(), v.datagrams.Load(), ratio)
	if ratio > maxAmplification {
		t.Errorf("victim received %.1fx what the attacker sent (bound %.0fx)", ratio, maxAmplification)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}
