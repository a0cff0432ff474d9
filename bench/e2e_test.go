package bench

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/internal/testnet"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// freePorts reserves n distinct UDP ports on 127.0.0.1 and releases them.
func freePorts(t testing.TB, n int) []int { t.Helper(); return testnet.FreePorts(t, n) }

// benchKey is the shared secret of the keyring variants.
var benchKey = []byte("warpmesh-bench-key-32-bytes-long")

func nodeOptions(t testing.TB, keyring bool, port int, peers ...int) engine.Options {
	t.Helper()
	o := engine.Options{
		Port: port, BindAddr: "127.0.0.1", UnicastOnly: true, Heartbeat: time.Second,
		Cluster: "bench", PublishRing: 1 << 22, RecvBuffer: 8 << 20, SendBuffer: 8 << 20, Logger: discard,
	}
	for _, p := range peers {
		o.Peers = append(o.Peers, fmt.Sprintf("127.0.0.1:%d", p))
	}
	if keyring {
		kr, err := engine.NewKeyring(benchKey)
		if err != nil {
			t.Fatal(err)
		}
		o.Keyring = kr
	}
	return o
}

// mesh is a publisher and its receivers, each counting what it applied.
type mesh struct {
	pub   *engine.Node
	recvs []*engine.Node
	got   []atomic.Uint64
}

// newMesh starts a publisher seeded with receivers that are seeded with it,
// and waits until the publisher sees every receiver alive.
func newMesh(t testing.TB, receivers int, keyring bool) *mesh {
	t.Helper()
	p := freePorts(t, 1+receivers)
	m := &mesh{got: make([]atomic.Uint64, receivers)}
	for i := range receivers {
		n, err := engine.New(nodeOptions(t, keyring, p[1+i], p[0]))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		got := &m.got[i]
		n.OnInvalidate(func(engine.Invalidation) { got.Add(1) })
		m.recvs = append(m.recvs, n)
	}
	pub, err := engine.New(nodeOptions(t, keyring, p[0], p[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	m.pub = pub
	waitFor(t, 10*time.Second, "receivers to join", func() bool { return alive(pub) == receivers })
	return m
}

func alive(n *engine.Node) int {
	return n.Stats().MembersAlive
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, d, what, cond)
}

// minGot is the count of the receiver that applied the fewest.
func (m *mesh) minGot() uint64 {
	lo := m.got[0].Load()
	for i := range m.got {
		lo = min(lo, m.got[i].Load())
	}
	return lo
}

// waitQuiet returns when every receiver has want or none has moved for 300ms.
func (m *mesh) waitQuiet(want uint64) {
	last, moved := m.minGot(), time.Now()
	for m.minGot() < want && time.Since(moved) < 300*time.Millisecond {
		time.Sleep(time.Millisecond) // polling for quiescence, not synchronising
		if g := m.minGot(); g != last {
			last, moved = g, time.Now()
		}
	}
}

// BenchmarkEndToEnd publishes b.N invalidations as fast as InvalidateBytes
// accepts them from one node to 1 or 3 receiver nodes over loopback UDP and
// reports, for the slowest receiver, invalidations applied per second from
// the first publish to the last arrival (inv/s) and the share it never got
// (loss%), without and with a keyring (AES-256-GCM on every frame).
// ns/op and allocs/op are the publisher's per invalidation.
func BenchmarkEndToEnd(b *testing.B) {
	for _, keyring := range []bool{false, true} {
		for _, receivers := range []int{1, 3} {
			for _, size := range []int{16, 64} {
				endToEnd(b, keyring, receivers, size)
			}
		}
	}
}

func endToEnd(b *testing.B, keyring bool, receivers, size int) {
	auth := map[bool]string{false: "off", true: "on"}[keyring]
	b.Run(fmt.Sprintf("keyring=%s/recv=%d/key=%d", auth, receivers, size), func(b *testing.B) {
		m := newMesh(b, receivers, keyring)
		key := make([]byte, size)
		for i := range key {
			key[i] = 'k'
		}
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			binary.BigEndian.PutUint64(key[size-8:], uint64(i))
			if err := m.pub.InvalidateBytes(key); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		m.waitQuiet(uint64(b.N))
		el := time.Since(start)
		g := m.minGot()
		b.ReportMetric(float64(g)/el.Seconds(), "inv/s")
		b.ReportMetric(100*float64(uint64(b.N)-min(g, uint64(b.N)))/float64(b.N), "loss%")
	})
}

// TestMeshDelivers checks the benchmark's plumbing: 1000 invalidations
// reach each of 3 receivers, with and without a keyring.
func TestMeshDelivers(t *testing.T) {
	for _, keyring := range []bool{false, true} {
		meshDelivers(t, keyring)
	}
}

func meshDelivers(t *testing.T, keyring bool) {
	m := newMesh(t, 3, keyring)
	for i := range 1000 {
		if err := m.pub.Invalidate(fmt.Sprintf("key-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "1000 at every receiver", func() bool { return m.minGot() >= 1000 })
}
