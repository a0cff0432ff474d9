package presets

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// shardLock is a shard's reader-writer lock, biased to readers: Get takes
// it for reading on every call, stores take it for writing.
//
// A sync.RWMutex counts its readers in one word, so two cores reading the
// same shard pass that cache line back and forth on every Get. Here the
// readers are spread over lockStripes counters, each on its own cache
// line, and a reader picks one from its goroutine's stack address: two
// goroutines reading at once almost always count on different lines, and
// the line a reader touches also holds the hit and miss counters it bumps.
//
// A reader announces itself on its stripe, then checks the writer flag; a
// writer raises the flag, then waits for every stripe to drain. Both steps
// are sequentially consistent atomics, so either the reader sees the flag
// (it withdraws and waits for the writer on mu) or the writer sees the
// reader (it waits for it to leave): they never both proceed. Writers take
// mu among themselves first. A writer waits only for readers already
// inside, which hold it for a map lookup; readers arriving meanwhile wait.
type shardLock struct {
	writer  atomic.Int32 // 1 while a writer holds or is acquiring the lock
	mu      sync.Mutex   // serialises writers; readers that meet one wait here
	_       [116]byte    // keep the stripes off the writer's line
	stripes [lockStripes]lockStripe
}

// lockStripes is the number of reader counters per shard: a power of two,
// enough that concurrent readers rarely share one.
const (
	lockStripeBits = 3
	lockStripes    = 1 << lockStripeBits
)

// lockStripe is one reader counter, with the Get counters of the readers
// that use it, alone on a cache line: 128 bytes apart, whatever the
// alignment of the shard.
type lockStripe struct {
	readers      atomic.Int32
	hits, misses atomic.Uint64
	_            [104]byte
}

// RLock locks for reading and returns the stripe to unlock with.
func (l *shardLock) RLock() *lockStripe {
	st, ok := l.tryRLock()
	if !ok {
		l.rlockSlow(st)
	}
	return st
}

// tryRLock announces a reader on its stripe and reports whether no writer
// holds the lock; if one does, the caller must call rlockSlow(st) before
// reading. It inlines (RLock, with the call to the slow path, does not):
// Get spells RLock out with it.
func (l *shardLock) tryRLock() (*lockStripe, bool) {
	// A goroutine's stack address tells it apart: stacks start at 8 KiB,
	// aligned to their size, so neighbouring stacks differ from bit 13 up.
	var here byte
	st := &l.stripes[uintptr(unsafe.Pointer(&here))>>13&(lockStripes-1)]
	st.readers.Add(1)
	return st, l.writer.Load() == 0
}

// rlockSlow withdraws st's reader, waits for the writer and announces it
// again, until no writer holds the lock.
func (l *shardLock) rlockSlow(st *lockStripe) {
	for l.writer.Load() != 0 {
		st.readers.Add(-1)
		l.waitWriter()
		st.readers.Add(1)
	}
}

// waitWriter blocks until the writer that holds mu lets go of it.
func (l *shardLock) waitWriter() {
	l.mu.Lock()
	defer l.mu.Unlock() // nothing to guard: taking mu is the wait
}

// RUnlock unlocks a read lock taken on st.
func (st *lockStripe) RUnlock() { st.readers.Add(-1) }

// Lock locks for writing.
func (l *shardLock) Lock() {
	l.mu.Lock()
	l.writer.Store(1)
	for i := range l.stripes {
		for l.stripes[i].readers.Load() != 0 {
			runtime.Gosched() // a reader is inside for a map lookup
		}
	}
}

// Unlock unlocks for writing.
func (l *shardLock) Unlock() {
	l.writer.Store(0)
	l.mu.Unlock()
}

// counts returns the hits and misses counted on every stripe.
func (l *shardLock) counts() (hits, misses uint64) {
	for i := range l.stripes {
		hits += l.stripes[i].hits.Load()
		misses += l.stripes[i].misses.Load()
	}
	return hits, misses
}
