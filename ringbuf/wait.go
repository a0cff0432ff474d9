package ringbuf

import (
	"context"
	"runtime"
	"sync/atomic"
)

// cacheLine is the assumed size of a CPU cache line. Hot fields written by
// different goroutines are kept at least this far apart.
const cacheLine = 64

// spinRounds is how many times a blocked Push, Write or Wait re-checks its
// condition (yielding the processor between checks) before it parks.
const spinRounds = 4

// waitq is where goroutines park while a ring is full (producers) or empty
// (the consumer).
//
// The fast path never touches the channel: the side that makes progress calls
// wake, which is one atomic load unless somebody is parked. Parking follows
// the classic protocol that cannot lose a wake-up: count yourself as a waiter,
// re-check the condition, and only then block. Go's atomics are sequentially
// consistent, so either the waker sees the count or the waiter sees the
// progress (or both, which costs one spurious wake-up).
//
// The channel holds at most one token, so one wake releases one waiter. A
// producer that was woken and then succeeds wakes the next parked producer
// (the consumer may have freed room for many); one that finds the ring full
// again simply parks again, because the consumer will signal when it frees
// more. So a wake-up chain runs while there is room and stops when there is
// none, and no producer ever wakes another just to re-park.
type waitq struct {
	waiters atomic.Int32
	parks   atomic.Uint64 // times a goroutine blocked here; slow path only
	ch      chan struct{}
	_       [cacheLine - 24]byte
}

func newWaitq() waitq { return waitq{ch: make(chan struct{}, 1)} }

// wake signals a parked waiter, if there is one. Does not allocate.
func (q *waitq) wake() {
	if q.waiters.Load() != 0 {
		q.signal()
	}
}

func (q *waitq) signal() {
	select {
	case q.ch <- struct{}{}:
	default: // a token is already pending; it will wake someone.
	}
}

// park blocks until ready reports true, the ring is closed (done), a wake-up
// arrives, or ctx ends. It returns ctx.Err() only for the last; in every other
// case the caller re-checks its own condition and calls park again if needed.
func (q *waitq) park(ctx context.Context, done <-chan struct{}, ready func() bool) error {
	q.waiters.Add(1)
	if ready() {
		q.waiters.Add(-1)
		return nil
	}
	q.parks.Add(1)
	select {
	case <-q.ch:
		q.waiters.Add(-1)
		return nil
	case <-done:
		q.waiters.Add(-1)
		return nil
	case <-ctx.Done():
		q.waiters.Add(-1)
		return ctx.Err()
	}
}

// spin re-checks ready a few times, yielding the processor in between, so a
// short wait never pays for parking. It reports whether ready became true.
func spin(ready func() bool) bool {
	for range spinRounds {
		runtime.Gosched()
		if ready() {
			return true
		}
	}
	return false
}

// closedBit is set in a ring's tail by Close. Every claim of a position is a
// CAS on the tail, so once the bit is set no claim can succeed: a consumer
// that sees the ring closed and the tail (without the bit) equal to its head
// knows nothing more can ever arrive. Positions never reach 2^63.
const closedBit = 1 << 63

// closer is the Close machinery shared by every ring.
type closer struct {
	closed atomic.Bool
	done   chan struct{}
}

func newCloser() closer { return closer{done: make(chan struct{})} }

// close closes the ring once and wakes every parked goroutine.
func (c *closer) close() {
	if c.closed.CompareAndSwap(false, true) {
		close(c.done)
	}
}

// waitReady is the consumer side of Wait shared by every ring: nil as soon as
// ready, ErrClosed once closed and drained, ctx.Err() if ctx ends first.
// drained reports that no producer holds a claimed but uncommitted position,
// so a value pushed just before Close is never reported as ErrClosed (a
// claim is always committed without blocking, so that wait is short).
func waitReady(ctx context.Context, c *closer, q *waitq, ready, drained func() bool) error {
	if ready() {
		return nil
	}
	if spin(ready) {
		return nil
	}
	for {
		if c.closed.Load() {
			if ready() {
				return nil
			}
			if drained() {
				return ErrClosed
			}
			runtime.Gosched() // a producer is between claim and commit.
			continue
		}
		if err := q.park(ctx, c.done, ready); err != nil {
			return err
		}
		if ready() {
			return nil
		}
	}
}

// pushSlow is the blocking tail of Push and Write shared by every ring: spin
// a little, then park on q until try succeeds, the ring closes or ctx ends.
func pushSlow(ctx context.Context, c *closer, q *waitq, hasSpace, try func() bool) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if spin(hasSpace) && try() {
		return nil
	}
	for {
		if err := q.park(ctx, c.done, hasSpace); err != nil {
			return err
		}
		if c.closed.Load() {
			return ErrClosed
		}
		if try() {
			q.wake() // there may be room for the next parked producer too.
			return nil
		}
	}
}

func isPowerOfTwo(n int) bool { return n > 0 && n&(n-1) == 0 }
