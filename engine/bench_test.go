package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// benchPair starts a publisher and a receiver on loopback, sealing every
// frame when key is set.
func benchPair(b *testing.B, key []byte, gso bool) (pub, recv *Node) {
	p := freePorts(b, 2)
	o := unicastOptions(p[0])
	if key != nil {
		o = keyedOptions(b, p[0], key)
	}
	o.DisableGSO = !gso
	o.Heartbeat = time.Second
	o.PublishRing = 1 << 22
	o.RecvBuffer, o.SendBuffer = 8<<20, 8<<20
	pub = startNode(b, o)
	o2 := o
	o2.Port, o2.Peers = p[1], []string{fmt.Sprintf("127.0.0.1:%d", p[0])}
	recv = startNode(b, o2)
	waitFor(b, 5*time.Second, "join", func() bool { return aliveCount(pub) == 1 && aliveCount(recv) == 1 })
	return pub, recv
}

// waitQuiet waits until got reaches want or stops moving for 300ms.
func waitQuiet(got *atomic.Uint64, want uint64) {
	last, lastMove := got.Load(), time.Now()
	for got.Load() < want && time.Since(lastMove) < 300*time.Millisecond {
		time.Sleep(time.Millisecond)
		if g := got.Load(); g != last {
			last, lastMove = g, time.Now()
		}
	}
}

// BenchmarkEndToEnd publishes b.N invalidations from one node to another
// over loopback UDP as fast as Publish accepts them and reports what the
// receiver applied per second. Loss (no repair yet in this path's figures)
// is reported separately.
func BenchmarkEndToEnd(b *testing.B) {
	for _, tc := range []struct {
		size        int
		sealed, gso bool
	}{{16, false, true}, {64, false, true}, {16, true, true}, {64, true, true}, {16, false, false}, {64, false, false}} {
		name := fmt.Sprintf("key%d", tc.size)
		var secret []byte
		if tc.sealed {
			name += "-sealed"
			secret = testKey(9)
		}
		if !tc.gso {
			name += "-nogso"
		}
		size := tc.size
		b.Run(name, func(b *testing.B) {
			pub, recv := benchPair(b, secret, tc.gso)
			var got atomic.Uint64
			recv.OnInvalidate(func(Invalidation) { got.Add(1) })
			key := make([]byte, size)
			for i := range key {
				key[i] = 'k'
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				binary.BigEndian.PutUint64(key[size-8:], uint64(i))
				if err := pub.InvalidateBytes(key); err != nil {
					b.Fatal(err)
				}
			}
			waitQuiet(&got, uint64(b.N))
			el := time.Since(start)
			b.StopTimer()
			g := got.Load()
			b.ReportMetric(float64(g)/el.Seconds(), "inv/s")
			b.ReportMetric(100*float64(uint64(b.N)-min(g, uint64(b.N)))/float64(b.N), "loss%")
			s := pub.Stats()
			if s.FramesSent > 0 {
				b.ReportMetric(float64(s.RecordsSent)/float64(s.FramesSent), "inv/frame")
			}
		})
	}
}

// BenchmarkLatency publishes at a fixed rate and reports publish-to-apply
// latency percentiles between two nodes on loopback.
func BenchmarkLatency(b *testing.B) {
	for _, rate := range []int{1000, 50000} {
		b.Run(fmt.Sprintf("rate%dk", rate/1000), func(b *testing.B) {
			pub, recv := benchPair(b, nil, true)
			base := time.Now()
			lat := make([]int64, b.N)
			var got atomic.Uint64
			recv.OnInvalidate(func(inv Invalidation) {
				if len(inv.Key) != 16 {
					return
				}
				i := binary.BigEndian.Uint64(inv.Key[0:8])
				sent := int64(binary.BigEndian.Uint64(inv.Key[8:16]))
				if i < uint64(len(lat)) {
					lat[i] = int64(time.Since(base)) - sent
				}
				got.Add(1)
			})
			key := make([]byte, 16)
			interval := time.Second / time.Duration(rate)
			b.ReportAllocs()
			b.ResetTimer()
			next := time.Since(base)
			for i := 0; i < b.N; i++ {
				pace(base, next)
				next += interval
				binary.BigEndian.PutUint64(key[0:8], uint64(i))
				binary.BigEndian.PutUint64(key[8:16], uint64(time.Since(base)))
				if err := pub.InvalidateBytes(key); err != nil {
					b.Fatal(err)
				}
			}
			waitQuiet(&got, uint64(b.N))
			b.StopTimer()
			n := int(got.Load())
			vals := make([]int64, 0, n)
			for _, v := range lat {
				if v > 0 {
					vals = append(vals, v)
				}
			}
			if len(vals) == 0 {
				b.Fatal("nothing delivered")
			}
			slices.Sort(vals)
			pct := func(p float64) float64 { return float64(vals[int(p*float64(len(vals)-1))]) / 1e3 }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			b.ReportMetric(pct(0.999), "p99.9-µs")
			b.ReportMetric(float64(vals[len(vals)-1])/1e3, "max-µs")
		})
	}
}

// pace waits until base+next by sleeping, never spinning, so the
// publisher does not hold a core the node's goroutines need. At rates
// above the sleep granularity it publishes what is due in small bursts.
func pace(base time.Time, next time.Duration) {
	if d := next - time.Since(base); d > 0 {
		time.Sleep(d)
	}
}
