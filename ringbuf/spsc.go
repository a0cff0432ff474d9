package ringbuf

import (
	"context"
	"fmt"
	"sync/atomic"
)

// SPSC is a bounded ring of fixed-size values between exactly one producer
// goroutine (TryPush, Push) and exactly one consumer goroutine (TryPop,
// PopBatch, Wait). Len, Cap, Closed and Close may be called from anywhere.
//
// The producer's and the consumer's positions live on separate cache lines;
// each side keeps a private copy of the other's position and re-reads the
// shared one only when its copy says the ring is full (or empty).
type SPSC[T any] struct {
	_ [cacheLine]byte
	// Producer line: written only by the producer.
	tail      atomic.Uint64 // next position to write
	headCache uint64        // producer's last view of head
	_         [cacheLine - 16]byte
	// Consumer line: written only by the consumer.
	head      atomic.Uint64 // next position to read
	tailCache uint64        // consumer's last view of tail
	_         [cacheLine - 16]byte
	// Read-mostly line.
	buf  []T
	mask uint64
	closer
	_ [cacheLine]byte

	notEmpty waitq // the consumer parks here
	notFull  waitq // the producer parks here
}

// NewSPSC returns an empty SPSC ring holding up to capacity values. capacity
// must be a power of two >= 2; otherwise the error wraps ErrCapacity.
func NewSPSC[T any](capacity int) (*SPSC[T], error) {
	if capacity < 2 || !isPowerOfTwo(capacity) {
		return nil, fmt.Errorf("ringbuf: NewSPSC capacity %d must be a power of two >= 2: %w", capacity, ErrCapacity)
	}
	return &SPSC[T]{
		buf:      make([]T, capacity),
		mask:     uint64(capacity - 1),
		closer:   newCloser(),
		notEmpty: newWaitq(),
		notFull:  newWaitq(),
	}, nil
}

// TryPush appends v and reports true, or reports false without blocking when
// the ring is full or closed (see Closed). Producer only. Does not allocate.
func (r *SPSC[T]) TryPush(v T) bool {
	tail := r.tail.Load()
	if tail&closedBit != 0 {
		return false
	}
	if tail-r.headCache > r.mask {
		r.headCache = r.head.Load()
		if tail-r.headCache > r.mask {
			return false
		}
	}
	r.buf[tail&r.mask] = v
	// A CAS rather than a store (the same locked instruction on amd64) so a
	// concurrent Close either sees this value or refuses it, never loses it.
	if !r.tail.CompareAndSwap(tail, tail+1) {
		var zero T
		r.buf[tail&r.mask] = zero
		return false // closed meanwhile
	}
	r.notEmpty.wake()
	return true
}

// Push appends v, waiting while the ring is full: it spins briefly, then
// parks until the consumer frees space. It returns ErrClosed once the ring is
// closed and ctx.Err() if ctx ends first. Producer only.
func (r *SPSC[T]) Push(ctx context.Context, v T) error {
	if r.TryPush(v) {
		return nil
	}
	return pushSlow(ctx, &r.closer, &r.notFull, r.hasSpace, func() bool { return r.TryPush(v) })
}

// hasSpace reports whether a TryPush would find room.
func (r *SPSC[T]) hasSpace() bool {
	head := r.head.Load()
	return r.tail.Load()&^closedBit-head <= r.mask
}

// TryPop removes and returns the oldest value, or reports false when the
// ring is empty. Consumer only. Does not allocate.
func (r *SPSC[T]) TryPop() (T, bool) {
	var zero T
	head := r.head.Load()
	if head == r.tailCache {
		r.tailCache = r.tail.Load() &^ closedBit
		if head == r.tailCache {
			return zero, false
		}
	}
	i := head & r.mask
	v := r.buf[i]
	r.buf[i] = zero // drop references so the GC can free them.
	r.head.Store(head + 1)
	r.notFull.wake()
	return v, true
}

// PopBatch moves up to len(dst) of the oldest values into dst without
// blocking and returns how many it moved. It publishes the consumer position
// once for the whole batch. Consumer only. Does not allocate.
func (r *SPSC[T]) PopBatch(dst []T) int {
	head := r.head.Load()
	if uint64(len(dst)) > r.tailCache-head {
		r.tailCache = r.tail.Load() &^ closedBit
	}
	n := min(uint64(len(dst)), r.tailCache-head)
	if n == 0 {
		return 0
	}
	start := head & r.mask
	first := min(n, uint64(len(r.buf))-start) // run up to the end of buf
	copy(dst, r.buf[start:start+first])
	clear(r.buf[start : start+first])
	if first < n {
		copy(dst[first:n], r.buf[:n-first])
		clear(r.buf[:n-first])
	}
	r.head.Store(head + n)
	r.notFull.wake()
	return int(n)
}

// Wait blocks until at least one value is ready (nil), the ring is closed and
// empty (ErrClosed), or ctx ends (ctx.Err()). It spins briefly before
// parking. Consumer only.
func (r *SPSC[T]) Wait(ctx context.Context) error {
	return waitReady(ctx, &r.closer, &r.notEmpty, r.ready, r.empty)
}

func (r *SPSC[T]) ready() bool { return r.tail.Load()&^closedBit != r.head.Load() }

func (r *SPSC[T]) empty() bool { return !r.ready() }

// Len returns the number of values in the ring. It is a snapshot and may be
// stale by the time the caller reads it.
func (r *SPSC[T]) Len() int {
	head := r.head.Load()
	return int(r.tail.Load()&^closedBit - head)
}

// Cap returns the capacity the ring was created with.
func (r *SPSC[T]) Cap() int { return len(r.buf) }

// Closed reports whether Close has been called.
func (r *SPSC[T]) Closed() bool { return r.closed.Load() }

// Close closes the ring and wakes every waiting goroutine. Values already in
// the ring can still be popped; Wait returns ErrClosed once they are gone.
// Close is idempotent.
func (r *SPSC[T]) Close() {
	r.tail.Or(closedBit)
	r.close()
}
