package bridge

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// benchPair is mesh A (a publisher, a direct receiver, a bridge) and mesh
// B (a bridge, a receiver), joined through one local nats-server.
type benchPair struct {
	pub, direct, far *engine.Node
	ba, bb           *Bridge
}

func newBenchPair(b *testing.B, onDirect, onFar engine.Handler) *benchPair {
	ns := startNATS(b, false)
	p := &benchPair{}
	start := func(o engine.Options) *engine.Node {
		n, err := engine.New(o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		return n
	}
	big := func(o engine.Options) engine.Options {
		o.PublishRing, o.RecvBuffer, o.SendBuffer = 8<<20, 8<<20, 8<<20
		o.Heartbeat = time.Second // a loaded machine must not look like a dead member
		return o
	}
	p.pub = start(big(meshOptions("A", "")))
	o := big(meshOptions("A", p.pub.Addr().String()))
	o.OnInvalidate = onDirect
	p.direct = start(o)
	bridge := func(mesh string, seed *engine.Node) *Bridge {
		x, err := New(Options{Mesh: big(meshOptions(mesh, seed.Addr().String())), NATSURL: ns.url(),
			KeepAlive: 250 * time.Millisecond, StreamTimeout: 3 * time.Second, Logger: quietLogger,
			MaxBatchBytes: 256 << 10, ExportWait: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { x.Close() })
		return x
	}
	p.ba = bridge("A", p.pub)
	o = big(meshOptions("B", ""))
	o.OnInvalidate = onFar
	p.far = start(o)
	p.bb = bridge("B", p.far)
	waitFor(b, 10*time.Second, "A and B linked", func() bool {
		return p.bb.Leader() && p.ba.Leader() && p.bb.Stats().Meshes == 1 && p.ba.Stats().Meshes == 1 &&
			p.pub.Stats().MembersAlive == 2 && p.far.Stats().MembersAlive == 1
	})
	return p
}

// BenchmarkBridgeThroughput: invalidations per second from a publisher in
// mesh A to a receiver in mesh B through one bridge pair and a local
// nats-server, 16-byte keys, published as fast as the mesh takes them.
// direct-inv/s is the same run's rate at a receiver in mesh A (the mesh
// path alone, sharing the publisher with the bridge).
func BenchmarkBridgeThroughput(b *testing.B) {
	var got, direct atomic.Int64
	var directDone atomic.Int64 // unix ns when the direct receiver had all
	n := int64(b.N)
	p := newBenchPair(b, func(engine.Invalidation) {
		if direct.Add(1) == n {
			directDone.Store(time.Now().UnixNano())
		}
	}, func(engine.Invalidation) { got.Add(1) })
	key := make([]byte, 16)
	copy(key, "bench:")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		binary.BigEndian.PutUint64(key[8:], uint64(i))
		if err := p.pub.InvalidateBytes(key); err != nil {
			b.Fatal(err)
		}
	}
	waitAll(b, p, &got)
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "inv/s")
	waitFor(b, 10*time.Second, "the direct receiver", func() bool { return directDone.Load() != 0 })
	b.ReportMetric(float64(b.N)/time.Duration(directDone.Load()-start.UnixNano()).Seconds(), "direct-inv/s")
	s := p.ba.Stats()
	if s.ExportBatches > 0 {
		b.ReportMetric(float64(s.Exported)/float64(s.ExportBatches), "inv/batch")
	}
	if f := p.bb.Stats().Flushed(); f > 1 { // the takeover flush only
		b.Fatalf("the far bridge flushed %d times under load: %v", f, p.bb.Stats().Flushes)
	}
}

// BenchmarkBridgeLatency: the same path at a steady 20k invalidations/s;
// each key carries its send time. p50/p99 through the bridge, of the
// direct mesh path (a receiver in mesh A), and what the bridge adds.
func BenchmarkBridgeLatency(b *testing.B) {
	var mu sync.Mutex
	var direct, far []time.Duration
	rec := func(dst *[]time.Duration) engine.Handler {
		return func(inv engine.Invalidation) {
			if len(inv.Key) != 16 {
				return
			}
			d := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(inv.Key[8:])))
			mu.Lock()
			*dst = append(*dst, d)
			mu.Unlock()
		}
	}
	p := newBenchPair(b, rec(&direct), rec(&far))
	const rate = 20000 // per second, in ticks of 1 ms
	key := make([]byte, 16)
	copy(key, "lat:")
	b.ReportAllocs()
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for sent := 0; sent < b.N; {
		<-tick.C
		for j := 0; j < rate/1000 && sent < b.N; j++ {
			binary.BigEndian.PutUint32(key[4:], uint32(sent))
			binary.BigEndian.PutUint64(key[8:], uint64(time.Now().UnixNano()))
			if err := p.pub.InvalidateBytes(key); err != nil {
				b.Fatal(err)
			}
			sent++
		}
	}
	waitFor(b, 30*time.Second, "every invalidation on both receivers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(far) >= b.N && len(direct) >= b.N
	})
	b.StopTimer()
	q := func(ds []time.Duration, f float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[int(f*float64(len(s)-1))]
	}
	mu.Lock()
	defer mu.Unlock()
	d50, d99, f50, f99 := q(direct, 0.5), q(direct, 0.99), q(far, 0.5), q(far, 0.99)
	b.ReportMetric(float64(f50.Microseconds()), "bridged-p50-µs")
	b.ReportMetric(float64(f99.Microseconds()), "bridged-p99-µs")
	b.ReportMetric(float64(d50.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(d99.Microseconds()), "direct-p99-µs")
	b.ReportMetric(float64((f50 - d50).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64((f99 - d99).Microseconds()), "added-p99-µs")
}

// BenchmarkBridgeExportToFarMesh isolates the bridge: invalidations are
// handed straight to bridge A's export handler (as A's node would, 40 per
// mesh frame), cross NATS, are imported by bridge B and reach B's
// receiver over B's mesh. Mesh A's own UDP hop is left out.
func BenchmarkBridgeExportToFarMesh(b *testing.B) {
	var got atomic.Int64
	p := newBenchPair(b, nil, func(engine.Invalidation) { got.Add(1) })
	key := make([]byte, 16)
	copy(key, "bench:")
	inv := engine.Invalidation{Key: key, Origin: 0x1234, Epoch: 1}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		binary.BigEndian.PutUint64(key[8:], uint64(i))
		inv.Seq = uint64(i/40) + 1
		p.ba.exp.onInvalidate(inv)
	}
	waitAll(b, p, &got)
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "inv/s")
}

// waitAll waits until mesh B's receiver has every invalidation, or fails
// with what each stage counted.
func waitAll(b *testing.B, p *benchPair, got *atomic.Int64) {
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d arrived; bridge A %+v; bridge B %+v; A's bridge node gaps %v, far node gaps %v",
				got.Load(), b.N, p.ba.Stats(), p.bb.Stats(), p.ba.Node().Stats().GapsGivenUp, p.far.Stats().GapsGivenUp)
		}
		time.Sleep(time.Millisecond) // polling a counter, not synchronisation
	}
}
