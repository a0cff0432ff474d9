package ringbuf

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// valueRing is the method set SPSC and MPSC share, so one table of tests
// covers both.
type valueRing interface {
	TryPush(v int) bool
	Push(ctx context.Context, v int) error
	TryPop() (int, bool)
	PopBatch(dst []int) int
	Wait(ctx context.Context) error
	Len() int
	Cap() int
	Closed() bool
	Close()
}

var (
	_ valueRing = (*SPSC[int])(nil)
	_ valueRing = (*MPSC[int])(nil)
)

var valueRings = []struct {
	name string
	new  func(capacity int) (valueRing, error)
}{
	{"SPSC", func(c int) (valueRing, error) { return NewSPSC[int](c) }},
	{"MPSC", func(c int) (valueRing, error) { return NewMPSC[int](c) }},
}

func mustRing(t testing.TB, newRing func(int) (valueRing, error), capacity int) valueRing {
	t.Helper()
	r, err := newRing(capacity)
	if err != nil {
		t.Fatalf("new(%d): %v", capacity, err)
	}
	return r
}

// testCtx returns a context that ends well before the test binary's own
// timeout, so a lost wake-up fails the test instead of hanging it.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestErrClosedIsNetErrClosed(t *testing.T) {
	if !errors.Is(ErrClosed, net.ErrClosed) {
		t.Fatal("errors.Is(ErrClosed, net.ErrClosed) = false")
	}
	if !errors.Is(ErrClosed, ErrClosed) {
		t.Fatal("errors.Is(ErrClosed, ErrClosed) = false")
	}
	if errors.Is(ErrFull, net.ErrClosed) {
		t.Fatal("ErrFull must not be net.ErrClosed")
	}
}

func TestValueCapacityValidation(t *testing.T) {
	for _, rt := range valueRings {
		t.Run(rt.name, func(t *testing.T) {
			for _, c := range []int{-4, 0, 1, 3, 6, 1000} {
				_, err := rt.new(c)
				if err == nil {
					t.Fatalf("new(%d) succeeded; want an error", c)
				}
				if !errors.Is(err, ErrCapacity) || !strings.Contains(err.Error(), "capacity") {
					t.Fatalf("new(%d) error %q does not wrap ErrCapacity or name the parameter", c, err)
				}
			}
			for _, c := range []int{2, 4, 1024} {
				r := mustRing(t, rt.new, c)
				if r.Cap() != c || r.Len() != 0 {
					t.Fatalf("new(%d): Cap %d Len %d", c, r.Cap(), r.Len())
				}
			}
		})
	}
}

func TestValueFullEmptyWrap(t *testing.T) {
	for _, rt := range valueRings {
		t.Run(rt.name, func(t *testing.T) {
			r := mustRing(t, rt.new, 4)
			if v, ok := r.TryPop(); ok {
				t.Fatalf("TryPop on empty ring = %d, true", v)
			}
			if n := r.PopBatch(make([]int, 8)); n != 0 {
				t.Fatalf("PopBatch on empty ring = %d", n)
			}
			next, want := 0, 0
			// 25 laps of fill-to-full then partial drains: every index of the
			// ring is crossed many times, with batches that straddle the end.
			for lap := range 25 {
				for r.TryPush(next) {
					next++
				}
				if r.Len() != 4 {
					t.Fatalf("lap %d: Len of full ring = %d", lap, r.Len())
				}
				take := 1 + lap%4
				dst := make([]int, take)
				if n := r.PopBatch(dst); n != take {
					t.Fatalf("lap %d: PopBatch(%d) = %d", lap, take, n)
				}
				for _, v := range dst {
					if v != want {
						t.Fatalf("lap %d: got %d, want %d", lap, v, want)
					}
					want++
				}
				if r.Len() != 4-take {
					t.Fatalf("lap %d: Len = %d, want %d", lap, r.Len(), 4-take)
				}
			}
			dst := make([]int, 16)
			n := r.PopBatch(dst)
			for _, v := range dst[:n] {
				if v != want {
					t.Fatalf("drain: got %d, want %d", v, want)
				}
				want++
			}
			if want != next || r.Len() != 0 {
				t.Fatalf("drained to %d of %d, Len %d", want, next, r.Len())
			}
			for i := range 3 {
				if !r.TryPush(100 + i) {
					t.Fatal("TryPush into empty ring failed")
				}
			}
			for i := range 3 {
				if v, ok := r.TryPop(); !ok || v != 100+i {
					t.Fatalf("TryPop = %d, %v; want %d", v, ok, 100+i)
				}
			}
		})
	}
}

func TestValueClose(t *testing.T) {
	for _, rt := range valueRings {
		t.Run(rt.name, func(t *testing.T) {
			ctx := testCtx(t)
			r := mustRing(t, rt.new, 4)
			if err := r.Push(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if err := r.Push(ctx, 2); err != nil {
				t.Fatal(err)
			}
			r.Close()
			r.Close() // idempotent
			if !r.Closed() {
				t.Fatal("Closed() = false after Close")
			}
			if r.TryPush(3) {
				t.Fatal("TryPush after Close succeeded")
			}
			if err := r.Push(ctx, 3); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Push after Close = %v, want ErrClosed", err)
			}
			for want := 1; want <= 2; want++ {
				if err := r.Wait(ctx); err != nil {
					t.Fatalf("Wait with items left after Close = %v", err)
				}
				if v, ok := r.TryPop(); !ok || v != want {
					t.Fatalf("TryPop = %d, %v; want %d", v, ok, want)
				}
			}
			if err := r.Wait(ctx); !errors.Is(err, ErrClosed) {
				t.Fatalf("Wait on closed, drained ring = %v, want ErrClosed", err)
			}
		})
	}
}

func TestValueCloseWakesWaiters(t *testing.T) {
	for _, rt := range valueRings {
		t.Run(rt.name, func(t *testing.T) {
			ctx := testCtx(t)
			empty := mustRing(t, rt.new, 2)
			full := mustRing(t, rt.new, 2)
			for full.TryPush(0) {
			}
			errs := make(chan error, 2)
			go func() { errs <- empty.Wait(ctx) }()
			go func() { errs <- full.Push(ctx, 1) }()
			waitParked(t, func() bool {
				return parkedConsumer(empty) && parkedProducers(full) == 1
			})
			empty.Close()
			full.Close()
			for range 2 {
				select {
				case err := <-errs:
					if !errors.Is(err, ErrClosed) {
						t.Fatalf("woken by Close with %v, want ErrClosed", err)
					}
				case <-ctx.Done():
					t.Fatal("Close did not wake a parked goroutine")
				}
			}
		})
	}
}

func TestValueContextCancel(t *testing.T) {
	for _, rt := range valueRings {
		t.Run(rt.name, func(t *testing.T) {
			r := mustRing(t, rt.new, 2)
			ctx, cancel := context.WithCancel(context.Background())
			errs := make(chan error, 1)
			go func() { errs <- r.Wait(ctx) }()
			waitParked(t, func() bool { return parkedConsumer(r) })
			cancel()
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
			}

			for r.TryPush(0) {
			}
			ctx, cancel = context.WithCancel(context.Background())
			go func() { errs <- r.Push(ctx, 1) }()
			waitParked(t, func() bool { return parkedProducers(r) == 1 })
			cancel()
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("Push after cancel = %v, want context.Canceled", err)
			}
			if r.Len() != 2 {
				t.Fatalf("Len = %d after a cancelled Push, want 2", r.Len())
			}
		})
	}
}

// TestValueFastPathNeverSignals checks that a producer does not touch the
// wake-up channel when the consumer is not parked.
func TestValueFastPathNeverSignals(t *testing.T) {
	s, _ := NewSPSC[int](64)
	m, _ := NewMPSC[int](64)
	for i := range 64 {
		s.TryPush(i)
		m.TryPush(i)
	}
	s.PopBatch(make([]int, 64))
	m.PopBatch(make([]int, 64))
	if len(s.notEmpty.ch)+len(s.notFull.ch)+len(m.notEmpty.ch)+len(m.notFull.ch) != 0 {
		t.Fatal("a wake-up token was sent with nobody parked")
	}
}

// parkedConsumer reports whether r's consumer is counted as parked.
func parkedConsumer(r valueRing) bool {
	switch r := r.(type) {
	case *SPSC[int]:
		return r.notEmpty.waiters.Load() == 1
	case *MPSC[int]:
		return r.notEmpty.waiters.Load() == 1
	}
	return false
}

// parkedProducers returns how many of r's producers are parked.
func parkedProducers(r valueRing) int32 {
	switch r := r.(type) {
	case *SPSC[int]:
		return r.notFull.waiters.Load()
	case *MPSC[int]:
		return r.notFull.waiters.Load()
	}
	return -1
}

// parkCount returns how many times anyone parked on r.
func parkCount(r valueRing) uint64 {
	switch r := r.(type) {
	case *SPSC[int]:
		return r.notFull.parks.Load() + r.notEmpty.parks.Load()
	case *MPSC[int]:
		return r.notFull.parks.Load() + r.notEmpty.parks.Load()
	}
	return 0
}

// waitParked waits, with a deadline, until cond holds.
func waitParked(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("goroutine never parked")
		}
		runtime.Gosched()
	}
}
