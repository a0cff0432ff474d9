package memnet_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

// Helpers for meshes of real engine nodes on a memnet network.

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// simAddr is node i's address: 10.1.x.y:7946.
func simAddr(i int) netip.AddrPort {
	i++
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 7946)
}

// startMesh starts count nodes on n; node i listens at simAddr(i) and
// seeds from the nodes listed in seeds. opts(i) gives each node's options
// (Transport, AdvertiseAddr and Peers are filled in).
func startMesh(t testing.TB, n *memnet.Network, count int, seeds []int, opts func(i int) engine.Options) []*engine.Node {
	t.Helper()
	return startMeshOn(t, n, count, seeds, func(i int, ep *memnet.Endpoint) engine.Options {
		o := opts(i)
		o.Transport = ep
		return o
	})
}

// startMeshOn is startMesh for options that set their own Transport
// around node i's endpoint ep (a wrapper that slows or pauses it); each
// node is aborted when the test ends (no leave storm: the network goes
// away with them).
func startMeshOn(t testing.TB, n *memnet.Network, count int, seeds []int, opts func(i int, ep *memnet.Endpoint) engine.Options) []*engine.Node {
	t.Helper()
	nodes := make([]*engine.Node, count)
	for i := range nodes {
		ep, err := n.Listen(simAddr(i))
		if err != nil {
			t.Fatal(err)
		}
		o := opts(i, ep)
		o.AdvertiseAddr = ep.LocalAddr().String()
		for _, s := range seeds {
			if s != i {
				o.Peers = append(o.Peers, simAddr(s).String())
			}
		}
		if o.Logger == nil {
			o.Logger = quietLogger
		}
		node, err := engine.New(o)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		nodes[i] = node
		t.Cleanup(func() { node.Abort() })
	}
	return nodes
}

func aliveCount(n *engine.Node) int {
	return n.Stats().MembersAlive
}

func waitMesh(t testing.TB, d time.Duration, nodes []*engine.Node) {
	t.Helper()
	waitFor(t, d, "every node to see every other alive", func() bool {
		for _, n := range nodes {
			if aliveCount(n) != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// waitReady waits until every node is Ready.
func waitReady(t testing.TB, d time.Duration, nodes []*engine.Node) {
	t.Helper()
	waitFor(t, d, "every node ready", func() bool {
		for _, node := range nodes {
			if !node.Ready() {
				return false
			}
		}
		return true
	})
}

// treeAt returns, for the relay tree of nodes[0]'s stream as every node
// computes it (engine/fanout.go: ids on a ring from the origin, position
// p relays to p*F+1 … p*F+F), the index in nodes of the node at a ring
// position.
func treeAt(nodes []*engine.Node) func(pos int) int {
	ids := make([]uint64, len(nodes))
	for i, node := range nodes {
		ids[i] = node.ID()
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	o := slices.Index(sorted, ids[0])
	return func(pos int) int { return slices.Index(ids, sorted[(o+pos)%len(ids)]) }
}

// publishIndexed invalidates the 8-byte big-endian keys from..to-1.
func publishIndexed(t testing.TB, pub *engine.Node, from, to int) {
	t.Helper()
	key := make([]byte, 8)
	for i := from; i < to; i++ {
		binary.BigEndian.PutUint64(key, uint64(i))
		if err := pub.InvalidateBytes(key); err != nil {
			t.Fatal(err)
		}
	}
}

// coverage checks Warp Mesh's promise for one publisher: at every
// receiver, every invalidation was applied, or a Gap event from that
// publisher covers the sequence of the frame that carried it. The
// publisher must run with EchoLocal so that it reports each key's Seq.
type coverage struct {
	pub    *engine.Node
	mu     sync.Mutex
	seqs   []uint64 // key index → seq of the frame that carried it
	echoed int
	recv   []*receiverLog
}

type receiverLog struct {
	node    *engine.Node
	mu      sync.Mutex
	got     []bool
	applied int
	gaps    []engine.Gap
}

func newCoverage(pub *engine.Node, keys int, receivers ...*engine.Node) *coverage {
	c := &coverage{pub: pub, seqs: make([]uint64, keys)}
	pub.OnInvalidate(func(inv engine.Invalidation) {
		if inv.Origin != pub.ID() || len(inv.Key) != 8 {
			return
		}
		i := binary.BigEndian.Uint64(inv.Key)
		c.mu.Lock()
		if c.seqs[i] == 0 {
			c.echoed++
		}
		c.seqs[i] = inv.Seq
		c.mu.Unlock()
	})
	for _, r := range receivers {
		lr := &receiverLog{node: r, got: make([]bool, keys)}
		c.recv = append(c.recv, lr)
		r.OnInvalidate(func(inv engine.Invalidation) {
			if inv.Origin != pub.ID() || len(inv.Key) != 8 {
				return
			}
			i := binary.BigEndian.Uint64(inv.Key)
			lr.mu.Lock()
			if !lr.got[i] {
				lr.got[i] = true
				lr.applied++
			}
			lr.mu.Unlock()
		})
		r.OnEvent(func(e engine.Event) {
			if e.Type == engine.EventGap && e.Gap.Origin == pub.ID() {
				lr.mu.Lock()
				lr.gaps = append(lr.gaps, e.Gap)
				lr.mu.Unlock()
			}
		})
	}
	return c
}

// account returns, for receiver r, the keys in [from, to) applied, not
// applied but covered by a Gap (flagged), and neither (silent misses).
func (c *coverage) account(r, from, to int) (applied, flagged, silent int) {
	lr := c.recv[r]
	c.mu.Lock()
	defer c.mu.Unlock()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for i := from; i < to; i++ {
		if lr.got[i] {
			applied++
			continue
		}
		s := c.seqs[i]
		covered := false
		for _, g := range lr.gaps {
			if s != 0 && g.Epoch == c.pub.Epoch() && s >= g.First && s <= g.Last {
				covered = true
				break
			}
		}
		if covered {
			flagged++
		} else {
			silent++
		}
	}
	return applied, flagged, silent
}

// waitSettled waits until no receiver has a silent miss in [from, to), or
// fails after d naming the receiver, its figures and its node's stats.
func (c *coverage) waitSettled(t *testing.T, d time.Duration, from, to int) {
	t.Helper()
	waitFor(t, d, "the publisher's echo", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.echoed >= to-from
	})
	deadline := time.Now().Add(d)
	for r, lr := range c.recv {
		for {
			applied, flagged, silent := c.account(r, from, to)
			if silent == 0 {
				break
			}
			if time.Now().After(deadline) {
				lr.mu.Lock()
				gaps := fmt.Sprint(lr.gaps)
				lr.mu.Unlock()
				if len(gaps) > 400 {
					gaps = gaps[:400] + "…"
				}
				t.Fatalf("receiver %d after %v: applied %d flagged %d SILENT %d\n  %s\n  gaps %s",
					r, d, applied, flagged, silent, statsLine(lr.node), gaps)
			}
			time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
		}
	}
}

func statsLine(n *engine.Node) string {
	s := n.Stats()
	return fmt.Sprintf("frames %d data %d dup %d | gaps detected %d repaired %d events %d (by reason %v) lost %d | nacks %d rtx-in %d hwm-in %d | drops %v",
		s.FramesReceived, s.DataFrames, s.Duplicates, s.GapsDetected, s.GapsRepaired, s.GapEvents(), s.GapsGivenUp,
		s.FramesLost, s.NacksSent, s.RetransmitsReceived, s.HWMReceived, s.Drops)
}

// eventLog records one node's membership events per member id.
type eventLog struct {
	mu     sync.Mutex
	byPeer map[uint64][]engine.EventType
}

func recordEvents(n *engine.Node) *eventLog {
	l := &eventLog{byPeer: make(map[uint64][]engine.EventType)}
	n.OnEvent(func(e engine.Event) {
		if e.Type == engine.EventGap {
			return
		}
		l.mu.Lock()
		l.byPeer[e.Member.ID] = append(l.byPeer[e.Member.ID], e.Type)
		l.mu.Unlock()
	})
	return l
}

// sawInOrder reports whether the events about peer include want, in
// order (others may come between).
func (l *eventLog) sawInOrder(peer uint64, want ...engine.EventType) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for _, e := range l.byPeer[peer] {
		if i < len(want) && e == want[i] {
			i++
		}
	}
	return i == len(want)
}

func (l *eventLog) of(peer uint64) []engine.EventType {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]engine.EventType(nil), l.byPeer[peer]...)
}
