package ringbuf

import (
	"context"
	"testing"
)

// The hot paths must not allocate in steady state. The race detector does
// not allocate for these operations, so the gates run under -race too.

func TestAllocsValueRings(t *testing.T) {
	ctx := context.Background()
	for _, rt := range valueRings {
		t.Run(rt.name, func(t *testing.T) {
			r := mustRing(t, rt.new, 64)
			dst := make([]int, 16)
			if n := testing.AllocsPerRun(1000, func() {
				r.TryPush(1)
				r.TryPop()
			}); n != 0 {
				t.Fatalf("TryPush+TryPop: %v allocs/op", n)
			}
			if n := testing.AllocsPerRun(1000, func() {
				for range 16 {
					r.TryPush(2)
				}
				if r.PopBatch(dst) != 16 {
					t.Fatal("PopBatch short")
				}
			}); n != 0 {
				t.Fatalf("TryPush+PopBatch: %v allocs/op", n)
			}
			// The blocking calls allocate nothing when they need not wait.
			if n := testing.AllocsPerRun(1000, func() {
				_ = r.Push(ctx, 3)
				_ = r.Wait(ctx)
				r.TryPop()
			}); n != 0 {
				t.Fatalf("Push+Wait+TryPop: %v allocs/op", n)
			}
		})
	}
}

func TestAllocsRecords(t *testing.T) {
	ctx := context.Background()
	r := mustRecords(t, 4096)
	key := []byte("user:12345:profile")
	var total int
	count := func(kind uint8, rec []byte) { total += len(rec) + int(kind) }
	if n := testing.AllocsPerRun(1000, func() {
		for range 8 {
			if err := r.TryWrite(1, key); err != nil {
				t.Fatal(err)
			}
		}
		if r.Read(8, count) != 8 {
			t.Fatal("Read short")
		}
	}); n != 0 {
		t.Fatalf("TryWrite+Read: %v allocs/op", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		_ = r.Write(ctx, 2, key)
		_ = r.Wait(ctx)
		r.Read(1, func(kind uint8, rec []byte) { total += len(rec) })
	}); n != 0 {
		t.Fatalf("Write+Wait+Read: %v allocs/op", n)
	}
	if total == 0 {
		t.Fatal("Read never called fn")
	}
}
