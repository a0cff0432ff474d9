package presets

import (
	"fmt"
	"testing"
	"time"
)

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	return keys
}

func BenchmarkGetHit(b *testing.B) {
	c := newLocal[int](b)
	keys := benchKeys(4096)
	for i, k := range keys {
		c.Set(k, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.Get(keys[i&4095]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

// BenchmarkGetHitMeshed is BenchmarkGetHit on a node with a live member:
// the read path then also checks the node's news lease (engine.Node.Silent:
// an atomic load and a clock read), which a node alone skips; the
// serve-while-silent case skips it by option, so the two differ by the
// check alone.
func BenchmarkGetHitMeshed(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"lease", nil}, {"serve-while-silent", []Option{WithServeWhileSilent(true)}}} {
		b.Run(bc.name, func(b *testing.B) {
			cs := newMesh[int](b, 2, bc.opts...)
			c := cs[1]
			keys := benchKeys(4096)
			for i, k := range keys {
				c.Set(k, i)
			}
			b.ReportAllocs()
			i, missed := 0, 0
			for b.Loop() {
				if _, ok := c.Get(keys[i&4095]); !ok {
					missed++ // a member silent for SuspectAfter (a stalled machine): counted, not fatal
				}
				i++
			}
			b.ReportMetric(float64(missed)/float64(max(i, 1)), "misses/op")
		})
	}
}

func BenchmarkGetHitTTL(b *testing.B) {
	c := newLocal[int](b, WithTTL(time.Hour))
	keys := benchKeys(4096)
	for i, k := range keys {
		c.Set(k, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Get(keys[i&4095])
		i++
	}
}

func BenchmarkGetMiss(b *testing.B) {
	c := newLocal[int](b)
	keys := benchKeys(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.Get(keys[i&4095]); ok {
			b.Fatal("hit")
		}
		i++
	}
}

// BenchmarkGetParallel measures hit throughput across cores; run with
// -cpu=1,2 to see the scaling.
func BenchmarkGetParallel(b *testing.B) {
	c := newLocal[int](b)
	keys := benchKeys(4096)
	for i, k := range keys {
		c.Set(k, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(keys[i&4095])
			i += 7
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

// BenchmarkSet is a local Set plus its publish into the node's ring (no
// peers, so nothing is sent).
func BenchmarkSet(b *testing.B) {
	for _, ns := range []string{"", "users"} {
		b.Run("namespace="+ns, func(b *testing.B) {
			c := newLocal[int](b, WithNamespace(ns))
			keys := benchKeys(4096)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := c.Set(keys[i&4095], i); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkSetPropagation: Set on A, applied as invalidations on B over
// loopback UDP. Reports the rate at which B applied them and the share
// delivered (the engine's loss repair is not counted on here).
func BenchmarkSetPropagation(b *testing.B) {
	cs := newMesh[int](b, 2)
	a, r := cs[0], cs[1]
	keys := benchKeys(4096)
	base := r.Stats().RemoteInvalidations
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := a.Set(keys[i&4095], i); err != nil {
			b.Fatal(err)
		}
	}
	// Wait until B has applied them all, or until nothing arrives for 200ms.
	want := base + uint64(b.N)
	got, last, quiet := base, base, time.Now()
	for got < want && time.Since(quiet) < 200*time.Millisecond {
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
		if got = r.Stats().RemoteInvalidations; got != last {
			last, quiet = got, time.Now()
		}
	}
	end := quiet
	if got >= want {
		end = time.Now()
	}
	b.StopTimer()
	delivered := got - base
	b.ReportMetric(float64(delivered)/end.Sub(start).Seconds(), "invalidations/s")
	b.ReportMetric(100*float64(delivered)/float64(b.N), "delivered%")
}

// BenchmarkSetEvict: Set of new keys into a full cache, so every Set
// stores an entry and the policy evicts one (or rejects the newcomer).
func BenchmarkSetEvict(b *testing.B) {
	c := newLocal[int](b, WithMaxEntries(1<<14))
	keys := benchKeys(1 << 16)
	for i, k := range keys {
		c.Set(k, i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := c.Set(keys[(i*7919)&(1<<16-1)], i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
