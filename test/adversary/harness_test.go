package adversary

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

// long reports whether the long variant runs (WARPMESH_ADVERSARY_LONG=1).
func long() bool { return os.Getenv("WARPMESH_ADVERSARY_LONG") == "1" }

// pick returns short in the CI variant and long in the long one.
func pick[T any](short, longV T) T {
	if long() {
		return longV
	}
	return short
}

// Loopback addresses of the cast: the nodes, the victim, the attacker.
var (
	nodeIP     = netip.MustParseAddr("127.0.0.1")
	victimIP   = netip.MustParseAddr("127.0.0.2")
	attackerIP = netip.MustParseAddr("127.0.0.3")
)

const testHeartbeat = 50 * time.Millisecond

// target is a node under attack, with what it applied.
type target struct {
	*engine.Node
	mu      sync.Mutex
	applied map[string]time.Time // key → when applied
}

func (t *target) handler(inv engine.Invalidation) {
	t.mu.Lock()
	if t.applied == nil {
		t.applied = make(map[string]time.Time)
	}
	if _, ok := t.applied[string(inv.Key)]; !ok {
		t.applied[string(inv.Key)] = time.Now()
	}
	t.mu.Unlock()
}

// appliedAt returns when key was applied.
func (t *target) appliedAt(key string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.applied[key]
	return at, ok
}

// startNode starts a unicast-only node on 127.0.0.1 with a fast heartbeat.
func startNode(t testing.TB, peers []string, edit func(*engine.Options)) *target {
	t.Helper()
	tg := &target{}
	opts := engine.Options{
		Port:         engine.AnyPort,
		BindAddr:     nodeIP.String(),
		UnicastOnly:  true,
		Peers:        peers,
		Heartbeat:    testHeartbeat,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnInvalidate: tg.handler,
	}
	if edit != nil {
		edit(&opts)
	}
	n, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tg.Node = n
	t.Cleanup(func() { n.Close() })
	return tg
}

// member reports whether tg counts id as a live member.
func (tg *target) member(id uint64) bool {
	for _, m := range tg.Members() {
		if m.ID == id && (m.State == engine.StateAlive || m.State == engine.StateSuspect) {
			return true
		}
	}
	return false
}

// tableSize is every member entry the node holds, whatever its state.
func tableSize(s engine.Stats) int {
	return s.MembersAlive + s.MembersSuspect + s.MembersDead + s.MembersLeft + unvalidated(s)
}

// victim is a UDP socket that only counts what reaches it.
type victim struct {
	conn      *net.UDPConn
	addr      netip.AddrPort
	bytes     atomic.Uint64
	datagrams atomic.Uint64
}

func newVictim(t testing.TB) *victim {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(victimIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(1 << 20)
	v := &victim{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			v.bytes.Add(uint64(n))
			v.datagrams.Add(1)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return v
}

// attacker crafts frames with codec and sends them from 127.0.0.3.
type attacker struct {
	t       testing.TB
	conn    *net.UDPConn
	cluster uint64
	id      uint64
	epoch   uint64
	packet  atomic.Uint64 // one counter for every frame it sends, as a node has
	sent    atomic.Uint64 // bytes
	buf     []byte
	recv    atomic.Uint64             // bytes the node sent back to the attacker
	as      atomic.Pointer[[2]uint64] // (id, epoch) its RESPONSEs claim; nil: its own
}

func newAttacker(t testing.TB) *attacker {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(attackerIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{t: t, conn: c, cluster: codec.ClusterHash(engine.DefaultCluster), id: randID(), epoch: uint64(time.Now().UnixNano()),
		buf: make([]byte, 0, codec.MaxFrameSize)}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		out := make([]byte, 0, codec.MaxFrameSize)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			a.recv.Add(uint64(n))
			// The strongest attacker answers challenges sent to its own
			// address, so that its forged digests come from a validated
			// member.
			f, err := codec.ParseFrame(buf[:n])
			if err != nil || f.Header.Type != codec.TypeChallenge {
				continue
			}
			h := codec.Header{Type: codec.TypeResponse, HopLimit: 1, Cluster: a.cluster, Origin: a.id, Epoch: a.epoch, Packet: a.packet.Add(1)}
			if as := a.as.Load(); as != nil {
				h.Origin, h.Epoch = as[0], as[1]
			}
			out = append(codec.AppendHeader(out[:0], &h), f.Payload...)
			if codec.FinishFrame(out, 0) == nil {
				if _, err := c.WriteToUDPAddrPort(out, from); err == nil {
					a.sent.Add(uint64(len(out)))
				}
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return a
}

// header starts a frame of type typ from origin (a.id when 0).

// validate gets the attacker itself validated by tg (it answers the
// challenge to its own address), so that its digests come from a member:
// the strongest plaintext attacker. It reports whether that worked.
func (a *attacker) validate(tg *target) bool {
	a.send(tg.Addr(), a.alive(a.header(codec.TypeAlive, 0, 0), netip.AddrPort{}, nil))
	return eventually(5*time.Second, func() bool { return tg.member(a.id) })
}

func (a *attacker) header(typ codec.FrameType, origin, epoch uint64) codec.Header {
	if origin == 0 {
		origin, epoch = a.id, a.epoch
	}
	return codec.Header{Type: typ, HopLimit: 1, Cluster: a.cluster, Origin: origin, Epoch: epoch, Packet: a.packet.Add(1)}
}

// send writes frame to to and counts it.
func (a *attacker) send(to netip.AddrPort, frame []byte) {
	if _, err := a.conn.WriteToUDPAddrPort(frame, to); err != nil {
		// Loopback sends only fail when the buffer is full: slow down.
		time.Sleep(100 * time.Microsecond)
		if _, err := a.conn.WriteToUDPAddrPort(frame, to); err != nil {
			return
		}
	}
	a.sent.Add(uint64(len(frame)))
}

// alive builds an ALIVE from origin/epoch advertising adv (zero: the
// packet source) with the given digest.
func (a *attacker) alive(h codec.Header, adv netip.AddrPort, digest []codec.DigestEntry) []byte {
	b := codec.AppendHeader(a.buf[:0], &h)
	b = codec.AppendAlive(b, &codec.Alive{Incarnation: 1, Addr: adv})
	for i := range digest {
		b = codec.AppendDigestEntry(b, &digest[i])
	}
	if err := codec.FinishFrame(b, uint16(len(digest))); err != nil {
		a.t.Fatal(err)
	}
	a.buf = b
	return b
}

func (a *attacker) nack(h codec.Header, target, epoch uint64, ranges ...codec.SeqRange) []byte {
	b := codec.AppendHeader(a.buf[:0], &h)
	b = codec.AppendNack(b, &codec.Nack{Origin: target, Epoch: epoch})
	for _, r := range ranges {
		b = codec.AppendSeqRange(b, r)
	}
	if err := codec.FinishFrame(b, uint16(len(ranges))); err != nil {
		a.t.Fatal(err)
	}
	a.buf = b
	return b
}

func (a *attacker) leave(h codec.Header, inc uint64) []byte {
	b := codec.AppendHeader(a.buf[:0], &h)
	b = codec.AppendLeave(b, inc)
	if err := codec.FinishFrame(b, 0); err != nil {
		a.t.Fatal(err)
	}
	a.buf = b
	return b
}

func randID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

// heapMB returns the live heap after a collection, in MiB.
func heapMB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// rssMB returns the process's resident set in MiB (0 where unknown).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// waitFor is testnet.WaitFor returning the time it took.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	testnet.WaitFor(t, d, what, cond)
	return time.Since(start)
}

// eventually polls cond until it holds or d passes, and reports which.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond) // poll interval, not synchronisation
	}
	return true
}
