package engine

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// idleTransport never delivers anything; writes succeed. It lets tests
// drive the receive worker's frame handling directly.
type idleTransport struct {
	once    sync.Once
	closed  chan struct{}
	written atomic.Uint64
}

func newIdleTransport() *idleTransport { return &idleTransport{closed: make(chan struct{})} }

func (t *idleTransport) ReadBatch([]sockopt.Message) (int, error) {
	<-t.closed
	return 0, ErrClosed
}

func (t *idleTransport) WriteBatch(msgs []sockopt.Message) (int, error) {
	t.written.Add(uint64(len(msgs)))
	return len(msgs), nil
}

func (t *idleTransport) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:1") }

func (t *idleTransport) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

// quietOptions keeps heartbeats out of the measurement window.
func quietOptions(o Options) Options {
	o.Heartbeat = time.Hour
	return o
}

func TestReceiveDataZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	o := quietOptions(unicastOptions(7946))
	o.Transport = newIdleTransport()
	o.BindAddr = ""
	o.AdvertiseAddr = "127.0.0.1:7946"
	n := startNode(t, o)
	var applied int
	n.OnInvalidate(func(inv Invalidation) { applied++ })
	keys := [][]byte{[]byte("user:0000000001"), []byte("session:abcdef0123456789")}
	buf := make([]byte, 0, codec.DefaultMaxFrameSize)
	var fb codec.FrameBuilder
	seq := uint64(0)
	from := netip.MustParseAddrPort("127.0.0.1:9999")
	now := time.Now()
	build := func() []byte {
		seq++
		fb.Reset(buf[:0], codec.Header{Type: codec.TypeData, HopLimit: 1, Cluster: n.cfg.cluster,
			Origin: 0xABC, Epoch: 1, Seq: seq, Packet: seq}, codec.DefaultMaxFrameSize)
		for _, k := range keys {
			fb.Add(k, codec.RecordExact)
		}
		return fb.Finish()
	}
	n.rx.mu.Lock() // play the receive goroutine
	defer n.rx.mu.Unlock()
	n.rx.frame(build(), from, false, now) // first frame from an origin allocates its state
	allocs := testing.AllocsPerRun(1000, func() { n.rx.frame(build(), from, false, now) })
	if allocs != 0 {
		t.Fatalf("receive path allocates %.1f per frame", allocs)
	}
	if applied != 2*1002 {
		t.Fatalf("applied %d records, want %d", applied, 2*1002)
	}
	dup := build()
	n.rx.frame(dup, from, false, now)
	allocs = testing.AllocsPerRun(100, func() { n.rx.frame(dup, from, false, now) })
	if allocs != 0 {
		t.Fatalf("duplicate path allocates %.1f per frame", allocs)
	}
}

func TestPublishZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	p := freePorts(t, 2)
	a := startNode(t, quietOptions(unicastOptions(p[0])))
	b := startNode(t, quietOptions(unicastOptions(p[1], p[0])))
	assertMeshPublishZeroAlloc(t, a, b)
	s := "publish"
	if err := a.Invalidate(s); err != nil { // string form
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(1000, func() { a.Invalidate(s) }); allocs != 0 {
		t.Fatalf("Invalidate(string) allocates %.2f", allocs)
	}
}

// assertMeshPublishZeroAlloc publishes from a to b and asserts that the
// whole process — publish, the sender loop, both sockets, b's receive path
// and handler — allocates nothing per invalidation.
func assertMeshPublishZeroAlloc(t *testing.T, a, b *Node) {
	t.Helper()
	var got atomic.Uint64
	b.OnInvalidate(func(Invalidation) { got.Add(1) })
	waitFor(t, 5*time.Second, "join", func() bool { return aliveCount(a) == 1 && aliveCount(b) == 1 })
	key := []byte("user:0000000000")
	i := uint64(0)
	publish := func() {
		i++
		binary.BigEndian.PutUint64(key[5:13], i)
		if err := a.InvalidateBytes(key); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // warm up: first frames size the sender's scratch
		publish()
	}
	waitFor(t, 5*time.Second, "warm-up delivery", func() bool { return got.Load() >= 50 })
	if allocs := testing.AllocsPerRun(5000, publish); allocs != 0 {
		t.Fatalf("publish path allocates %.2f per invalidation", allocs)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return got.Load() >= 5000 })
}
