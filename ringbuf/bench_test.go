package ringbuf

import (
	"context"
	"sync"
	"testing"
)

// Benchmarks compare the rings with a buffered channel of the same capacity
// doing the same hand-off. Run with:
//
//	go test -run '^$' -bench . -count 3 ./ringbuf

const benchCap = 1024

func reportItems(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkPushPop is the uncontended cost of one push and one pop on the
// same goroutine.
func BenchmarkPushPop(b *testing.B) {
	b.Run("SPSC", func(b *testing.B) {
		r, _ := NewSPSC[uint64](benchCap)
		b.ReportAllocs()
		for i := range b.N {
			r.TryPush(uint64(i))
			r.TryPop()
		}
		reportItems(b)
	})
	b.Run("MPSC", func(b *testing.B) {
		r, _ := NewMPSC[uint64](benchCap)
		b.ReportAllocs()
		for i := range b.N {
			r.TryPush(uint64(i))
			r.TryPop()
		}
		reportItems(b)
	})
	b.Run("chan", func(b *testing.B) {
		c := make(chan uint64, benchCap)
		b.ReportAllocs()
		for i := range b.N {
			c <- uint64(i)
			<-c
		}
		reportItems(b)
	})
}

// BenchmarkHandoff moves b.N values from producer goroutines to one
// consumer: the ring consumer waits and drains in batches; the channel
// consumer receives one at a time (what a channel allows).
func BenchmarkHandoff(b *testing.B) {
	for _, producers := range []int{1, 4} {
		suffix := "/1P"
		if producers > 1 {
			suffix = "/4P"
		}
		if producers == 1 {
			b.Run("SPSC"+suffix, func(b *testing.B) {
				r, _ := NewSPSC[uint64](benchCap)
				benchRing(b, r, producers)
			})
		}
		b.Run("MPSC"+suffix, func(b *testing.B) {
			r, _ := NewMPSC[uint64](benchCap)
			benchRing(b, r, producers)
		})
		b.Run("chan"+suffix, func(b *testing.B) {
			benchChan(b, producers)
		})
	}
}

type benchRingT interface {
	Push(ctx context.Context, v uint64) error
	PopBatch(dst []uint64) int
	Wait(ctx context.Context) error
	Close()
}

func share(n, producers, p int) int {
	each := n / producers
	if p == producers-1 {
		each += n % producers
	}
	return each
}

func benchRing(b *testing.B, r benchRingT, producers int) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range share(b.N, producers, p) {
				if r.Push(ctx, uint64(i)) != nil {
					return
				}
			}
		})
	}
	got := 0
	batch := make([]uint64, 256)
	for got < b.N {
		if err := r.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		got += r.PopBatch(batch)
	}
	b.StopTimer()
	wg.Wait()
	r.Close()
	reportItems(b)
}

func benchChan(b *testing.B, producers int) {
	c := make(chan uint64, benchCap)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range share(b.N, producers, p) {
				c <- uint64(i)
			}
		})
	}
	for range b.N {
		<-c
	}
	b.StopTimer()
	wg.Wait()
	reportItems(b)
}

// BenchmarkRecords moves b.N records of a fixed size from producer
// goroutines through a 64 KiB Records ring to one consumer that reads them
// in batches of up to 256.
func BenchmarkRecords(b *testing.B) {
	for _, size := range []int{16, 64} {
		for _, producers := range []int{1, 4} {
			name := map[int]string{16: "16B", 64: "64B"}[size] + map[int]string{1: "/1P", 4: "/4P"}[producers]
			b.Run(name, func(b *testing.B) {
				r, _ := NewRecords(64 << 10)
				ctx := context.Background()
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				var wg sync.WaitGroup
				for p := range producers {
					wg.Go(func() {
						rec := make([]byte, size)
						for range share(b.N, producers, p) {
							if r.Write(ctx, 1, rec) != nil {
								return
							}
						}
					})
				}
				got, sum := 0, 0
				count := func(kind uint8, rec []byte) { sum += len(rec) }
				for got < b.N {
					if err := r.Wait(ctx); err != nil {
						b.Fatal(err)
					}
					got += r.Read(256, count)
				}
				b.StopTimer()
				wg.Wait()
				r.Close()
				if sum != b.N*size {
					b.Fatalf("read %d bytes, want %d", sum, b.N*size)
				}
				reportItems(b)
			})
		}
	}
}
