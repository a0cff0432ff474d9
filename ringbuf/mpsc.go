package ringbuf

import (
	"context"
	"fmt"
	"sync/atomic"
)

// mpscSlot is one cell of an MPSC ring. seq says whose turn the cell is:
// seq == pos means free for the producer claiming position pos; seq == pos+1
// means committed and ready for the consumer reading pos; after the consumer
// takes it, seq becomes pos+capacity (free for the next lap).
type mpscSlot[T any] struct {
	seq atomic.Uint64
	val T
}

// MPSC is a bounded ring of fixed-size values from any number of producer
// goroutines (TryPush, Push) to exactly one consumer goroutine (TryPop,
// PopBatch, Wait). Len, Cap, Closed and Close may be called from anywhere.
//
// It is Dmitry Vyukov's bounded queue with one consumer: producers claim a
// position with a CAS on the tail and commit by advancing the cell's
// sequence number; the consumer frees each cell the same way. A producer
// learns whether the ring is full from the cell it is about to claim, so it
// never reads the consumer's cache line (the per-cell sequence is its cached
// view of the consumer's position). Values from one producer are popped in
// the order that producer pushed them.
type MPSC[T any] struct {
	_ [cacheLine]byte
	// Producers' line: CAS-ed by every producer.
	tail atomic.Uint64
	_    [cacheLine - 8]byte
	// Consumer's line: written only by the consumer.
	head atomic.Uint64
	_    [cacheLine - 8]byte
	// Read-mostly line.
	slots []mpscSlot[T]
	mask  uint64
	closer
	_ [cacheLine]byte

	notEmpty waitq // the consumer parks here
	notFull  waitq // producers park here
}

// NewMPSC returns an empty MPSC ring holding up to capacity values. capacity
// must be a power of two >= 2; otherwise the error wraps ErrCapacity.
func NewMPSC[T any](capacity int) (*MPSC[T], error) {
	if capacity < 2 || !isPowerOfTwo(capacity) {
		return nil, fmt.Errorf("ringbuf: NewMPSC capacity %d must be a power of two >= 2: %w", capacity, ErrCapacity)
	}
	r := &MPSC[T]{
		slots:    make([]mpscSlot[T], capacity),
		mask:     uint64(capacity - 1),
		closer:   newCloser(),
		notEmpty: newWaitq(),
		notFull:  newWaitq(),
	}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r, nil
}

// TryPush appends v and reports true, or reports false without blocking when
// the ring is full or closed (see Closed). Safe for many producers. Does not
// allocate.
func (r *MPSC[T]) TryPush(v T) bool {
	pos := r.tail.Load()
	for {
		if pos&closedBit != 0 {
			return false
		}
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch diff := int64(seq - pos); {
		case diff == 0: // free for pos: claim it.
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.val = v
				s.seq.Store(pos + 1) // commit
				r.notEmpty.wake()
				return true
			}
			pos = r.tail.Load()
		case diff < 0: // still holds the value from the previous lap: full.
			return false
		default: // another producer claimed pos first.
			pos = r.tail.Load()
		}
	}
}

// Push appends v, waiting while the ring is full: it spins briefly, then
// parks until the consumer frees space. It returns ErrClosed once the ring is
// closed and ctx.Err() if ctx ends first. Safe for many producers.
func (r *MPSC[T]) Push(ctx context.Context, v T) error {
	if r.TryPush(v) {
		return nil
	}
	return pushSlow(ctx, &r.closer, &r.notFull, r.hasSpace, func() bool { return r.TryPush(v) })
}

// hasSpace reports whether the cell at the tail is free for this lap.
func (r *MPSC[T]) hasSpace() bool {
	pos := r.tail.Load() &^ closedBit
	return int64(r.slots[pos&r.mask].seq.Load()-pos) >= 0
}

// TryPop removes and returns the oldest committed value, or reports false
// when there is none. Consumer only. Does not allocate.
func (r *MPSC[T]) TryPop() (T, bool) {
	var zero T
	head := r.head.Load()
	s := &r.slots[head&r.mask]
	if s.seq.Load() != head+1 {
		return zero, false
	}
	v := s.val
	s.val = zero // drop references so the GC can free them.
	s.seq.Store(head + r.mask + 1)
	r.head.Store(head + 1)
	r.notFull.wake()
	return v, true
}

// PopBatch moves up to len(dst) of the oldest committed values into dst
// without blocking and returns how many it moved. Each cell is released as
// it is read; the consumer position is published once for the whole batch.
// A cell claimed but not yet committed by a slow producer ends the batch.
// Consumer only. Does not allocate.
func (r *MPSC[T]) PopBatch(dst []T) int {
	var zero T
	head := r.head.Load()
	n := 0
	for n < len(dst) {
		pos := head + uint64(n)
		s := &r.slots[pos&r.mask]
		if s.seq.Load() != pos+1 {
			break
		}
		dst[n] = s.val
		s.val = zero
		s.seq.Store(pos + r.mask + 1)
		n++
	}
	if n == 0 {
		return 0
	}
	r.head.Store(head + uint64(n))
	r.notFull.wake()
	return n
}

// Wait blocks until at least one committed value is ready (nil), the ring is
// closed and empty (ErrClosed), or ctx ends (ctx.Err()). It spins briefly
// before parking. Consumer only.
func (r *MPSC[T]) Wait(ctx context.Context) error {
	return waitReady(ctx, &r.closer, &r.notEmpty, r.ready, r.drained)
}

func (r *MPSC[T]) ready() bool {
	head := r.head.Load()
	return r.slots[head&r.mask].seq.Load() == head+1
}

// drained reports that every claimed position has been popped.
func (r *MPSC[T]) drained() bool { return r.tail.Load()&^closedBit == r.head.Load() }

// Len returns the number of claimed positions not yet popped, including
// values a producer is still writing. It is a snapshot.
func (r *MPSC[T]) Len() int {
	head := r.head.Load()
	n := r.tail.Load()&^closedBit - head
	return int(min(n, r.mask+1))
}

// Cap returns the capacity the ring was created with.
func (r *MPSC[T]) Cap() int { return len(r.slots) }

// Closed reports whether Close has been called.
func (r *MPSC[T]) Closed() bool { return r.closed.Load() }

// Close closes the ring and wakes every waiting goroutine. Values already
// committed can still be popped; Wait returns ErrClosed once they are gone.
// A Push racing with Close either lands before it (and will be popped) or
// fails. Close is idempotent.
func (r *MPSC[T]) Close() {
	r.tail.Or(closedBit)
	r.close()
}
