package ringbuf

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// stressItems is how many items each producer sends in the stress tests.
func stressItems() int {
	if raceEnabled {
		return 5000
	}
	return 50000
}

// item packs a producer id and that producer's sequence number.
func item(producer, seq int) int { return producer<<32 | seq }

// orderChecker verifies that every producer's items arrive exactly once and
// in the order it sent them.
type orderChecker struct {
	next []int
}

func (c *orderChecker) see(t *testing.T, v int) {
	p, seq := v>>32, v&(1<<32-1)
	if p < 0 || p >= len(c.next) {
		t.Fatalf("item from unknown producer %d", p)
	}
	if seq != c.next[p] {
		t.Fatalf("producer %d: got seq %d, want %d (lost, duplicated or reordered)", p, seq, c.next[p])
	}
	c.next[p]++
}

func (c *orderChecker) done(t *testing.T, perProducer int) {
	for p, n := range c.next {
		if n != perProducer {
			t.Fatalf("producer %d: %d of %d items arrived", p, n, perProducer)
		}
	}
}

// TestValueStress runs producers against one consumer through SPSC (one
// producer) and MPSC (several), with a roomy ring (mostly the lock-free fast
// path) and a tiny one (producers and the consumer park and wake constantly:
// a lost wake-up hangs until the context deadline and fails).
func TestValueStress(t *testing.T) {
	for _, rt := range valueRings {
		for _, capacity := range []int{2, 1024} {
			producers := 6
			if rt.name == "SPSC" {
				producers = 1
			}
			for _, blocking := range []bool{false, true} {
				name := fmt.Sprintf("%s/cap=%d/producers=%d/blocking=%v", rt.name, capacity, producers, blocking)
				t.Run(name, func(t *testing.T) {
					runValueStress(t, mustRing(t, rt.new, capacity), producers, blocking)
				})
			}
		}
	}
}

func runValueStress(t *testing.T, r valueRing, producers int, blocking bool) {
	ctx := testCtx(t)
	n := stressItems()
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			for seq := range n {
				if blocking {
					if err := r.Push(ctx, item(p, seq)); err != nil {
						errs <- fmt.Errorf("producer %d seq %d: Push: %w", p, seq, err)
						return
					}
					continue
				}
				for !r.TryPush(item(p, seq)) {
					runtime.Gosched() // 6 spinning producers on 2 cores would starve the consumer
					if err := ctx.Err(); err != nil {
						errs <- fmt.Errorf("producer %d seq %d: TryPush: %w", p, seq, err)
						return
					}
				}
			}
		})
	}
	go func() { wg.Wait(); r.Close() }()

	check := orderChecker{next: make([]int, producers)}
	batch := make([]int, 64)
	for i := 0; ; i++ {
		if err := r.Wait(ctx); err != nil {
			if err != ErrClosed {
				t.Fatalf("Wait: %v (lost wake-up?)", err)
			}
			break
		}
		if i%2 == 0 {
			v, ok := r.TryPop()
			if !ok {
				t.Fatal("TryPop failed right after Wait returned nil")
			}
			check.see(t, v)
			continue
		}
		got := r.PopBatch(batch)
		if got == 0 {
			t.Fatal("PopBatch = 0 right after Wait returned nil")
		}
		for _, v := range batch[:got] {
			check.see(t, v)
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	check.done(t, n)
	if blocking && r.Cap() == 2 && producers > 1 { // one producer may never need to park
		parks := parkCount(r)
		t.Logf("parked %d times", parks)
		if parks == 0 {
			t.Fatal("nobody ever parked on a 2-slot ring: the park path went untested")
		}
	}
}

// TestRecordsStress runs several producers writing records of varied sizes
// that carry (producer, seq) into one consumer, through a ring big enough
// for the fast path and through a tiny one that parks constantly.
func TestRecordsStress(t *testing.T) {
	for _, size := range []int{256, 65536} {
		for _, blocking := range []bool{false, true} {
			t.Run(fmt.Sprintf("size=%d/blocking=%v", size, blocking), func(t *testing.T) {
				runRecordsStress(t, mustRecords(t, size), 6, blocking)
			})
		}
	}
}

func runRecordsStress(t *testing.T, r *Records, producers int, blocking bool) {
	ctx := testCtx(t)
	n := stressItems()
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			var buf [64]byte
			for seq := range n {
				size := min(8+(seq*7+p)%57, r.MaxPayload())
				rec := buf[:size]
				fillPayload(rec, uint64(seq))
				binary.LittleEndian.PutUint64(rec, uint64(item(p, seq)))
				var err error
				if blocking {
					err = r.Write(ctx, uint8(p), rec)
				} else {
					for err = r.TryWrite(uint8(p), rec); err == ErrFull; err = r.TryWrite(uint8(p), rec) {
						runtime.Gosched()
						if err = ctx.Err(); err != nil {
							break
						}
					}
				}
				if err != nil {
					errs <- fmt.Errorf("producer %d seq %d: %w", p, seq, err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); r.Close() }()

	check := orderChecker{next: make([]int, producers)}
	var want [64]byte
	fn := func(kind uint8, rec []byte) {
		v := int(binary.LittleEndian.Uint64(rec))
		p, seq := v>>32, v&(1<<32-1)
		if int(kind) != p {
			t.Fatalf("record from producer %d has kind %d", p, kind)
		}
		w := want[:len(rec)]
		fillPayload(w, uint64(seq))
		for i := 8; i < len(rec); i++ {
			if rec[i] != w[i] {
				t.Fatalf("producer %d seq %d: byte %d corrupted", p, seq, i)
			}
		}
		check.see(t, v)
	}
	for {
		if err := r.Wait(ctx); err != nil {
			if err != ErrClosed {
				t.Fatalf("Wait: %v (lost wake-up?)", err)
			}
			break
		}
		if r.Read(32, fn) == 0 {
			t.Fatal("Read = 0 right after Wait returned nil")
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	check.done(t, n)
	if blocking && r.Size() == 256 {
		parks := r.notFull.parks.Load() + r.notEmpty.parks.Load()
		t.Logf("parked %d times", parks)
		if parks == 0 {
			t.Fatal("nobody ever parked on a 256-byte ring: the park path went untested")
		}
	}
	if r.Len() != 0 {
		t.Fatalf("Len = %d after draining", r.Len())
	}
}

// TestWaitReturnsClosedOnlyWhenDrained races Close against producers that
// are mid-push: Wait must never report ErrClosed while a pushed value is
// still unread.
func TestWaitReturnsClosedOnlyWhenDrained(t *testing.T) {
	ctx := testCtx(t)
	rounds := 200
	if raceEnabled {
		rounds = 50
	}
	for range rounds {
		r, _ := NewMPSC[int](8)
		var wg sync.WaitGroup
		var pushed [4]bool
		for p := range 4 {
			wg.Go(func() { pushed[p] = r.TryPush(p) })
		}
		go r.Close() // races the pushes
		got := 0
		for r.Wait(ctx) == nil {
			for {
				if _, ok := r.TryPop(); !ok {
					break
				}
				got++
			}
		}
		wg.Wait()
		want := 0
		for _, ok := range pushed {
			if ok {
				want++
			}
		}
		if got != want || ctx.Err() != nil {
			t.Fatalf("popped %d of %d pushed values before ErrClosed (ctx %v)", got, want, ctx.Err())
		}
	}
}

// TestRecordsWaitReturnsClosedOnlyWhenDrained is the Records twin of
// TestWaitReturnsClosedOnlyWhenDrained.
func TestRecordsWaitReturnsClosedOnlyWhenDrained(t *testing.T) {
	ctx := testCtx(t)
	rounds := 200
	if raceEnabled {
		rounds = 50
	}
	for range rounds {
		r := mustRecords(t, 256)
		var wg sync.WaitGroup
		var wrote [4]bool
		for p := range 4 {
			wg.Go(func() { wrote[p] = r.TryWrite(uint8(p), []byte("k")) == nil })
		}
		go r.Close() // races the writes
		got := 0
		for r.Wait(ctx) == nil {
			got += r.Read(8, func(uint8, []byte) {})
		}
		wg.Wait()
		want := 0
		for _, ok := range wrote {
			if ok {
				want++
			}
		}
		if got != want || ctx.Err() != nil {
			t.Fatalf("read %d of %d written records before ErrClosed (ctx %v)", got, want, ctx.Err())
		}
	}
}
