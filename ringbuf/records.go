package ringbuf

import (
	"context"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Record layout. Every record starts at a multiple of recordAlign inside the
// ring and occupies its header plus payload, rounded up to recordAlign:
//
//	 0                                 8
//	+----------------------------------+--------------------------+---------+
//	| header word (uint64, atomic)     | payload (length-8 bytes) | to 8    |
//	+----------------------------------+--------------------------+---------+
//
//	header word bits:
//	 0..31  length: header + payload in bytes; 0 = not committed (free)
//	32..39  kind: the caller's uint8
//	40      padding: the rest of the ring up to its end is skipped
//
// A producer claims space by advancing the tail with a CAS, copies its
// payload, and commits by storing the header word atomically: the consumer
// never sees a half-written record. Space the consumer has read is zeroed
// before the head moves past it, so a zero header always means "not yet".
const (
	recordHeaderLen = 8
	recordAlign     = 8
	headerLenMask   = 1<<32 - 1
	headerKindShift = 32
	headerPadding   = 1 << 40

	// minRecordsSize is the smallest ring NewRecords accepts.
	minRecordsSize = 256
	// maxRecordDivisor bounds a record to size/maxRecordDivisor bytes, which
	// bounds the space a padding record can waste at the wrap.
	maxRecordDivisor = 8
)

// Records is a bounded ring of variable-length byte records, each tagged
// with a kind byte, from any number of producer goroutines (TryWrite, Write)
// to exactly one consumer goroutine (Read, Wait), all in one preallocated
// power-of-two []byte. It is the shape of Agrona's ManyToOneRingBuffer:
// producers claim space with a CAS on the tail, write, then commit by
// publishing the record header atomically; a padding record fills the gap
// at the end of the ring when a record would straddle it. Records from one
// producer are read in the order that producer wrote them.
//
// A producer stalled between claiming and committing holds up the consumer
// (but not other producers) until it commits; a claim never blocks.
type Records struct {
	_ [cacheLine]byte
	// Producers' line.
	tail      atomic.Uint64 // next byte position to claim
	headCache atomic.Uint64 // producers' last view of head (may lag)
	_         [cacheLine - 16]byte
	// Consumer's line.
	head atomic.Uint64 // next byte position to read
	_    [cacheLine - 8]byte
	// Read-mostly line.
	words      []uint64 // the ring, as words: headers are read and written here
	buf        []byte   // the same memory, as bytes: payloads live here
	mask       uint64
	maxPayload int
	closer
	_ [cacheLine]byte

	notEmpty waitq // the consumer parks here
	notFull  waitq // producers park here
}

// NewRecords returns an empty ring of size bytes. size must be a power of
// two >= 256; otherwise the error wraps ErrCapacity. The largest payload is
// size/8 - 8 bytes (see MaxPayload): a 16 KiB ring carries 1 KiB keys.
func NewRecords(size int) (*Records, error) {
	if size < minRecordsSize || !isPowerOfTwo(size) {
		return nil, fmt.Errorf("ringbuf: NewRecords size %d must be a power of two >= %d: %w", size, minRecordsSize, ErrCapacity)
	}
	// Allocate words so headers are 8-byte aligned for 64-bit atomics.
	words := make([]uint64, size/8)
	return &Records{
		words:      words,
		buf:        unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size),
		mask:       uint64(size - 1),
		maxPayload: size/maxRecordDivisor - recordHeaderLen,
		closer:     newCloser(),
		notEmpty:   newWaitq(),
		notFull:    newWaitq(),
	}, nil
}

// alignRecord rounds n up to the record alignment.
func alignRecord(n uint64) uint64 { return (n + recordAlign - 1) &^ (recordAlign - 1) }

func (r *Records) header(idx uint64) *uint64 { return &r.words[idx/8] }

// TryWrite copies p into the ring as one record of the given kind without
// blocking. It returns nil, ErrFull (no room right now), ErrTooLarge
// (len(p) > MaxPayload) or ErrClosed. Empty records are allowed. Safe for
// many producers. Does not allocate.
func (r *Records) TryWrite(kind uint8, p []byte) error {
	if len(p) > r.maxPayload {
		return ErrTooLarge
	}
	length := uint64(recordHeaderLen + len(p))
	idx, err := r.claim(alignRecord(length))
	if err != nil {
		return err
	}
	copy(r.buf[idx+recordHeaderLen:], p)
	atomic.StoreUint64(r.header(idx), length|uint64(kind)<<headerKindShift) // commit
	r.notEmpty.wake()
	return nil
}

// claim reserves required (aligned) contiguous bytes and returns their
// index, writing a padding record first when they would straddle the end of
// the ring. It fails with ErrFull when there is not enough free space and
// with ErrClosed once Close has set the closed bit in the tail.
func (r *Records) claim(required uint64) (idx uint64, err error) {
	size := r.mask + 1
	for {
		head := r.headCache.Load() // before tail, so head <= tail here
		tail := r.tail.Load()
		if tail&closedBit != 0 {
			return 0, ErrClosed
		}
		idx = tail & r.mask
		need := required
		if toEnd := size - idx; required > toEnd {
			need = toEnd + required // pad to the end, then write at 0
		}
		if tail+need-head > size {
			head = r.head.Load()
			used := int64(tail - head)
			if used < 0 {
				continue // tail moved on since we read it
			}
			if uint64(used)+need > size {
				return 0, ErrFull
			}
			r.headCache.Store(head)
		}
		if !r.tail.CompareAndSwap(tail, tail+need) {
			continue
		}
		if need != required {
			atomic.StoreUint64(r.header(idx), (size-idx)|headerPadding)
			return 0, nil
		}
		return idx, nil
	}
}

// Write copies p into the ring as one record of the given kind, waiting
// while there is no room: it spins briefly, then parks until the consumer
// frees space. It returns ErrTooLarge, ErrClosed, or ctx.Err() if ctx ends
// first. Safe for many producers.
func (r *Records) Write(ctx context.Context, kind uint8, p []byte) error {
	err := r.TryWrite(kind, p)
	if err != ErrFull {
		return err
	}
	required := alignRecord(uint64(recordHeaderLen + len(p)))
	return pushSlow(ctx, &r.closer, &r.notFull,
		func() bool { return r.hasSpace(required) },
		func() bool { return r.TryWrite(kind, p) == nil })
}

// hasSpace reports whether a claim of required bytes would succeed now.
func (r *Records) hasSpace(required uint64) bool {
	size := r.mask + 1
	head := r.head.Load()
	tail := r.tail.Load() &^ closedBit
	need := required
	if toEnd := size - tail&r.mask; required > toEnd {
		need = toEnd + required
	}
	return tail-head+need <= size
}

// Read calls fn for up to max committed records, oldest first, then frees
// their space and publishes the consumer position once. It returns how many
// records fn saw. It never blocks; a record claimed but not yet committed
// ends the run. rec is a view into the ring valid only during the call: fn
// must not retain it (copy what it needs). Consumer only. Does not allocate
// when fn does not escape.
func (r *Records) Read(max int, fn func(kind uint8, rec []byte)) int {
	size := r.mask + 1
	head := r.head.Load()
	var consumed uint64
	n := 0
	for n < max && consumed < size {
		idx := (head + consumed) & r.mask
		h := atomic.LoadUint64(r.header(idx))
		if h == 0 {
			break
		}
		length := h & headerLenMask
		if h&headerPadding != 0 {
			consumed += length
			continue
		}
		end := idx + length
		fn(uint8(h>>headerKindShift), r.buf[idx+recordHeaderLen:end:end])
		consumed += alignRecord(length)
		n++
	}
	if consumed == 0 {
		return 0
	}
	// Zero what was read so every header in it reads "not committed" again.
	start := head & r.mask
	if start+consumed <= size {
		clear(r.buf[start : start+consumed])
	} else {
		clear(r.buf[start:])
		clear(r.buf[:start+consumed-size])
	}
	r.head.Store(head + consumed)
	r.notFull.wake()
	return n
}

// Wait blocks until at least one committed record is ready (nil), the ring
// is closed and empty (ErrClosed), or ctx ends (ctx.Err()). It spins briefly
// before parking. Consumer only.
func (r *Records) Wait(ctx context.Context) error {
	return waitReady(ctx, &r.closer, &r.notEmpty, r.ready, r.drained)
}

// ready reports whether the record at the head is committed, looking past a
// padding record to the start of the ring.
func (r *Records) ready() bool {
	head := r.head.Load()
	h := atomic.LoadUint64(r.header(head & r.mask))
	if h&headerPadding != 0 {
		h = atomic.LoadUint64(r.header(0))
	}
	return h != 0
}

// drained reports that every claimed byte has been read.
func (r *Records) drained() bool { return r.tail.Load()&^closedBit == r.head.Load() }

// Len returns the number of bytes in use: record headers, payloads,
// alignment and padding, including records still being written. It is a
// snapshot.
func (r *Records) Len() int {
	head := r.head.Load()
	return int(r.tail.Load()&^closedBit - head)
}

// Size returns the ring size in bytes that NewRecords was given.
func (r *Records) Size() int { return len(r.buf) }

// MaxPayload returns the largest p that TryWrite and Write accept.
func (r *Records) MaxPayload() int { return r.maxPayload }

// Closed reports whether Close has been called.
func (r *Records) Closed() bool { return r.closed.Load() }

// Close closes the ring and wakes every waiting goroutine. Records already
// committed can still be read; Wait returns ErrClosed once they are gone.
// Close is idempotent.
func (r *Records) Close() {
	r.tail.Or(closedBit)
	r.close()
}
