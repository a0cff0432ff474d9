package cachesim

import (
	"sync/atomic"
	"testing"
)

// The benchmarks give every cache the same work: benchCapacity entries,
// keys built before the timer starts, a Zipf(0.99) order of requests
// (hot keys are hit often, as in front of a database). Run them side by
// side and compare as ratios within one run:
//
//	go test -run '^$' -bench . -benchmem -count 6 -cpu 1,2 . | tee new.txt
//	benchstat -col /cache new.txt
//
// Besides wall time per op, each reports cpu-ns/op, the process's CPU
// time per op (every goroutine: a cache's background maintenance counts),
// which a loaded machine disturbs far less.
const (
	benchCapacity = 1 << 16
	benchKeys     = 1 << 15 // every one fits: Get measures hits
	benchOrder    = 1 << 20
)

var (
	keys  = Keys(4 * benchCapacity)
	order = func() []uint32 {
		t := Zipf(0.99, benchOrder, benchKeys, 42)
		return t.IDs
	}()
)

func newFilled(b *testing.B, m Maker) Cache {
	b.Helper()
	c, err := m.New(benchCapacity)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	w, async := c.(interface{ Wait() })
	for i := range benchKeys {
		for try := 0; try < 10; try++ { // ristretto may drop or reject a Set: retry it
			c.Set(keys[i], i)
			if !async {
				break
			}
			w.Wait()
			if _, ok := c.Get(keys[i]); ok {
				break
			}
		}
	}
	return c
}

// BenchmarkGet: Get of keys all present, one goroutine.
func BenchmarkGet(b *testing.B) {
	for _, m := range Makers {
		b.Run("cache="+m.Name, func(b *testing.B) {
			c := newFilled(b, m)
			b.ReportAllocs()
			i, hits := 0, 0
			cpu := processCPU()
			for b.Loop() {
				if _, ok := c.Get(keys[order[i&(benchOrder-1)]]); ok {
					hits++
				}
				i++
			}
			reportCPU(b, cpu, i)
			b.ReportMetric(100*float64(hits)/float64(i), "hit%")
		})
	}
}

// BenchmarkGetParallel: Get of keys all present from every P, each
// goroutine starting at its own place in the request order.
func BenchmarkGetParallel(b *testing.B) {
	for _, m := range Makers {
		b.Run("cache="+m.Name, func(b *testing.B) {
			c := newFilled(b, m)
			var start atomic.Uint32
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(1) * 104_729) // a prime stride apart
				for pb.Next() {
					c.Get(keys[order[i&(benchOrder-1)]])
					i++
				}
			})
			reportCPU(b, cpu, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
		})
	}
}

// BenchmarkSet: Set of keys from a pool twice the capacity, so a steady
// share of the Sets store a new key and evict one. presets' Set also
// publishes the invalidation into its node's ring (no peers, so nothing
// is sent).
func BenchmarkSet(b *testing.B) {
	for _, m := range Makers {
		b.Run("cache="+m.Name, func(b *testing.B) {
			c := newFilled(b, m)
			pool := 2 * benchCapacity
			for i := range pool { // fill to capacity first: measure the steady state
				c.Set(keys[(i*7919)%pool], i)
			}
			b.ReportAllocs()
			i := 0
			cpu := processCPU()
			for b.Loop() {
				id := (i * 7919) % pool
				c.Set(keys[id], i)
				i++
			}
			reportCPU(b, cpu, i)
		})
	}
}

// reportCPU reports the process CPU time since start per op.
func reportCPU(b *testing.B, start int64, ops int) {
	if ops > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(ops), "cpu-ns/op")
	}
}
