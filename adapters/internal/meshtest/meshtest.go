// Package meshtest builds what the adapter modules' tests need: two real
// nodes on 127.0.0.1 that know each other, the second behind a transport
// the test can cut, to raise a real engine.EventGap. It is for tests only
// and sends no traffic beyond 127.0.0.1.
package meshtest

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
	"github.com/warpmesh/warpmesh/sockopt"
)

// cuttable is a loopback UDP transport that can discard everything it
// receives, as a partition would.
type cuttable struct {
	*sockopt.Conn
	cut       atomic.Bool
	discarded atomic.Uint64 // datagrams read and dropped while cut
}

var _ engine.Transport = (*cuttable)(nil)

// ReadBatch reads the next batch, discarding batches read while cut.
func (c *cuttable) ReadBatch(msgs []sockopt.Message) (int, error) {
	for {
		n, err := c.Conn.ReadBatch(msgs)
		if err != nil || n == 0 || !c.cut.Load() {
			return n, err
		}
		c.discarded.Add(uint64(n))
	}
}

// Mesh is two nodes: A publishes, B listens behind a cuttable transport.
type Mesh struct {
	A, B *engine.Node
	bt   *cuttable
	gaps atomic.Int64
}

func options() engine.Options {
	return engine.Options{
		Port:         engine.AnyPort,
		BindAddr:     "127.0.0.1",
		UnicastOnly:  true,
		Heartbeat:    30 * time.Millisecond,
		SuspectAfter: 5 * time.Second, // a cut of a second is not a death
		DeadAfter:    10 * time.Second,
		Cluster:      "adapters-test",
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		PublishRing:  1 << 16,
	}
}

// New starts the two nodes and waits until each sees the other and both
// are ready (so an attached cache is not flushed by EventReady). A keeps
// only about 46 frames for repair, so a cut of B during a few hundred
// frames cannot be repaired and B raises a Gap.
func New(t testing.TB) *Mesh {
	t.Helper()
	m := &Mesh{}
	oa := options()
	oa.RetransmitBuffer = 64 << 10
	oa.FlowWindow = -1 // B sends no ACKs while cut: A must not wait for them
	a, err := engine.New(oa)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	conn, err := sockopt.Listen(sockopt.Config{
		BindAddr:   netip.MustParseAddr("127.0.0.1"),
		RecvBuffer: 1 << 20,
		SendBuffer: 1 << 20,
		DisableGRO: true, // the engine parses one datagram at a time
	})
	if err != nil {
		t.Fatal(err)
	}
	m.bt = &cuttable{Conn: conn}
	ob := options()
	ob.Transport = m.bt
	ob.Peers = []string{a.Addr().String()}
	b, err := engine.New(ob)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.OnEvent(func(e engine.Event) {
		if e.Type == engine.EventGap {
			m.gaps.Add(1)
		}
	})
	m.A, m.B = a, b
	WaitFor(t, 5*time.Second, "the two nodes to meet and be ready", func() bool {
		return a.Stats().MembersAlive == 1 && b.Stats().MembersAlive == 1 && a.Ready() && b.Ready()
	})
	return m
}

// Gaps returns how many Gap events B has raised.
func (m *Mesh) Gaps() int64 { return m.gaps.Load() }

// ForceGap cuts B off, publishes from A far past what A keeps for repair,
// heals the cut, and waits until B raises a Gap. The invalidations
// published use 8-byte binary keys that no test caches.
func (m *Mesh) ForceGap(t testing.TB) {
	t.Helper()
	before := m.Gaps()
	s0, d0 := m.A.Stats(), m.bt.discarded.Load()
	m.bt.cut.Store(true)
	key := make([]byte, 8)
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			binary.BigEndian.PutUint64(key, uint64(i))
			if err := m.A.InvalidateBytes(key); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 30_000) // ~600 frames: A's repair ring rolls over
	// Heal only once B has read (and dropped) everything A sent it during
	// the cut: the kernel buffer would otherwise hand B the frames after
	// the cut, and nothing would be missing. A's only member is B.
	WaitFor(t, 20*time.Second, "B to drop what A sent during the cut", func() bool {
		s := m.A.Stats()
		return s.RecordsSent-s0.RecordsSent >= 30_000 && m.bt.discarded.Load()-d0 >= s.FramesSent-s0.FramesSent
	})
	m.bt.cut.Store(false)
	WaitFor(t, 20*time.Second, "B to raise a Gap", func() bool {
		publish(30_000, 30_001) // a frame after the cut shows B what it missed
		return m.Gaps() > before
	})
}

// WaitFor polls cond until it holds or d passes.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, d, what, cond)
}
