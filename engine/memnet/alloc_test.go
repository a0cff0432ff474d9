package memnet_test

import (
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine/memnet"
	"github.com/warpmesh/warpmesh/sockopt"
)

// roundTrip returns a function that writes a batch from a to b and reads
// it back, failing the test on any error or short read.
func roundTrip(t testing.TB, a, b *memnet.Endpoint, batch int) func() {
	out := make([]sockopt.Message, batch)
	for i := range out {
		out[i] = sockopt.Message{Buf: make([]byte, 1200), Addr: b.LocalAddr()}
	}
	in := readBufs(batch, 1400)
	return func() {
		if k, err := a.WriteBatch(out); err != nil || k != batch {
			t.Fatalf("WriteBatch = %d, %v", k, err)
		}
		for got := 0; got < batch; {
			k, err := b.ReadBatch(in[got:])
			if err != nil {
				t.Fatalf("ReadBatch: %v", err)
			}
			got += k
		}
	}
}

func TestZeroAlloc(t *testing.T) {
	for _, tc := range []struct {
		name string
		link memnet.Link
	}{
		{"immediate", memnet.Link{}},
		{"lossy duplicating", memnet.Link{Duplicate: 0.2}},
		{"delayed with jitter", memnet.Link{Delay: 50 * time.Microsecond, Jitter: 100 * time.Microsecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 1)
			a := listen(t, n, "10.0.0.1:1")
			b := listen(t, n, "10.0.0.2:1")
			if err := n.SetDefaultLink(tc.link); err != nil {
				t.Fatal(err)
			}
			round := roundTrip(t, a, b, 16)
			if tc.link.Duplicate > 0 {
				// Duplicates make reads unpredictable; measure writes and
				// drain what arrived.
				msgs := readBufs(64, 1400)
				write := roundTrip(t, a, b, 1)
				round = func() {
					write()
					for s := b.Stats(); s.Read < s.Delivered; s = b.Stats() {
						b.ReadBatch(msgs)
					}
				}
			}
			for range 100 { // warm up: queues and scheduler buffers grow once
				round()
			}
			if allocs := testing.AllocsPerRun(1000, round); allocs != 0 {
				t.Fatalf("write+read round allocates %.2f", allocs)
			}
		})
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name string
		link memnet.Link
	}{{"immediate", memnet.Link{}}, {"delayed", memnet.Link{Delay: 10 * time.Microsecond}}} {
		b.Run(tc.name, func(b *testing.B) {
			n := newNet(b, 1)
			x := listen(b, n, "10.0.0.1:1")
			y := listen(b, n, "10.0.0.2:1")
			if err := n.SetDefaultLink(tc.link); err != nil {
				b.Fatal(err)
			}
			const batch = 32
			round := roundTrip(b, x, y, batch)
			b.ReportAllocs()
			b.SetBytes(batch * 1200)
			b.ResetTimer()
			for b.Loop() {
				round()
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}
