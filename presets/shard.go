package presets

import (
	"strings"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Storage. A cache is split into shards (a power of two, at most
// maxShards) picked by the xxhash of the key; each shard has its own lock,
// index, eviction queues and frequency sketch, so operations on different
// shards never contend.
//
// Eviction is W-TinyLFU (Einziger, Eytan, Friedman, Manes, "Adaptive
// Software Cache Management", and Caffeine's design), per shard:
//
//   - A new entry enters the window, a small recency queue (1% of the
//     shard). The window lets a burst of new keys build up a frequency
//     before they must compete.
//   - The entry the window pushes out is a candidate for the main space,
//     split into probation and protected queues (SLRU, protected 80%). It
//     is compared with main's victim, the entry at the cold end of
//     probation, by their frequencies in the sketch (sketch.go): the more
//     frequent stays, the other leaves. A key used once, or a pass over
//     more keys than the cache holds (a scan, a loop), cannot displace what
//     is used often; equally frequent keys keep the incumbent, so a loop
//     keeps most of itself cached instead of evicting each key just before
//     its reuse as LRU does.
//   - A probation entry used again moves to protected; protected's cold end
//     drops back to probation when protected is full.
//   - The window's share is fixed (Caffeine adapts it by hill climbing;
//     on the traces of bench/cachesim a fixed 1% already matches or beats
//     the caches that adapt).
//
// Get never takes the write lock, and its read lock touches no cache line
// another core's Get is likely to (shardlock.go). Instead of moving an
// entry to the hot end of its queue on a hit, a hit counts itself in the
// entry (hits, one atomic load and a store while under maxPending, under
// the read lock): the queues are CLOCK-ordered LRU lists. When a queue's
// cold end is examined (under the write lock, on a store that needs room),
// an entry with hits gets them added to the sketch and moves to the hot
// end (window, protected) or is promoted (probation → protected) instead
// of being chosen; one without hits is the victim. So the write lock is
// only taken by stores, deletes and flushes, and the order is the LRU
// order up to the granularity of one pass.
//
// The slots array holds limit+1 entries: a store inserts first and evicts
// after, so the new entry competes like any other. Nothing here allocates
// once the shard is full and its free list has grown to its largest.

// maxShards bounds the shards of a cache; minShardEntries is the fewest
// entries a shard is given when there are several. Sharding is for
// concurrent stores (readers do not contend, shardlock.go); a shard of a
// few dozen entries judges a loop or a scan much worse than one of
// hundreds (a loop's keys spread unevenly over shards, and a shard's
// window is at least one entry).
const (
	maxShards       = 64
	minShardEntries = 512
)

// maxPending bounds the hits an entry counts between two looks by the
// policy: the sketch counts to 15, so more carry no information.
const maxPending = 15

// Queues an entry can be in.
const (
	inNone uint8 = iota
	inWindow
	inProbation
	inProtected
)

// Results of a victim search other than a slot.
const (
	noVictim = -1 // the queues searched are empty
	reaped   = -2 // an expired entry was removed instead: room was made
)

// slot is one entry, linked into one queue: 40 bytes besides the value.
type slot[T any] struct {
	key        string
	val        T
	expires    int64  // nanoseconds since the cache's base time; 0 = never
	prev, next int32  // neighbours in the queue (prev toward the hot end); -1 = none
	hits       uint32 // hits since the policy last looked; set atomically by readers
	meta       uint32 // 30 high bits of the key's xxhash (for the sketch) << 2 | queue
}

func (e *slot[T]) hash() uint32     { return e.meta >> 2 }
func (e *slot[T]) queue() uint8     { return uint8(e.meta & 3) }
func (e *slot[T]) setQueue(q uint8) { e.meta = e.meta&^3 | uint32(q) }

// queue is a doubly linked list of slots: head is the hot end, tail the
// cold end.
type queue struct {
	head, tail int32
	n          int
}

type shard[T any] struct {
	mu    shardLock        // Get reads under it; the policy's state is written under it
	index map[string]int32 // key → slot
	slots []slot[T]
	free  []int32 // dead slots below len(slots)
	limit int     // most entries this shard holds

	window, probation, protected queue
	windowMax, protectedMax      int
	freq                         sketch
	rand                         uint64 // xorshift state for admission ties of warm keys

	inflight map[string]*call[T] // loads whose result may still be stored

	evictions, expirations atomic.Uint64
	_                      [64]byte // keep neighbouring shards' locks apart
}

func (s *shard[T]) init(limit int) {
	s.limit = limit
	s.index = make(map[string]int32)
	s.inflight = make(map[string]*call[T])
	s.windowMax = max(1, limit/100)
	s.protectedMax = (limit - s.windowMax) * 8 / 10
	s.freq.init(limit)
	s.rand = 0x9e3779b97f4a7c15 ^ uint64(limit)
	s.resetQueues()
}

func (s *shard[T]) resetQueues() {
	for _, q := range []*queue{&s.window, &s.probation, &s.protected} {
		*q = queue{head: -1, tail: -1}
	}
}

// lookup returns key's value if present and not expired at now, counting
// the hit in the entry. The caller holds s.mu (read or write). It does not
// allocate.
func (s *shard[T]) lookup(key string, now func() int64) (v T, ok, expired bool) {
	i, found := s.index[key]
	if !found {
		return v, false, false
	}
	e := &s.slots[i]
	if e.expires != 0 && now() >= e.expires {
		return v, false, true
	}
	if h := atomic.LoadUint32(&e.hits); h < maxPending {
		atomic.StoreUint32(&e.hits, h+1) // racing readers may lose a count: it is a hint
	}
	return e.val, true, false
}

// store sets key to v, evicting if the shard is full; now is read only if
// an eviction meets an entry with a TTL. The caller holds s.mu for
// writing.
func (s *shard[T]) store(key string, v T, expires int64, now func() int64) {
	if i, ok := s.index[key]; ok {
		e := &s.slots[i]
		e.val, e.expires = v, expires
		if h := atomic.LoadUint32(&e.hits); h < maxPending {
			atomic.StoreUint32(&e.hits, h+1) // a write is a use
		}
		return
	}
	h := uint32(xxhash.Sum64String(key) >> 34)
	s.freq.add(h, 1)
	i := s.alloc()
	s.slots[i] = slot[T]{key: key, val: v, expires: expires, meta: h << 2, prev: -1, next: -1}
	s.index[key] = i
	s.push(&s.window, i, inWindow)
	s.evict(now)
}

// alloc returns a free slot: a dead one or a new one. The shard holds at
// most limit entries before a store, so there is always one of the limit+1.
func (s *shard[T]) alloc() int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return i
	}
	if len(s.slots) == cap(s.slots) { // grow, but never past the limit+1 the shard can use
		grown := make([]slot[T], len(s.slots), min(max(2*cap(s.slots), 16), s.limit+1))
		copy(grown, s.slots)
		s.slots = grown
	}
	s.slots = s.slots[:len(s.slots)+1]
	return int32(len(s.slots) - 1)
}

// clock reads the time at most once per eviction, and only if an entry
// with a TTL is examined.
type clock struct {
	now func() int64
	t   int64
}

func (c *clock) expired(e int64) bool {
	if e == 0 {
		return false
	}
	if c.t < 0 {
		c.t = c.now()
	}
	return c.t >= e
}

// evict restores the window's size and the shard's limit after an insert:
// the window's cold entry moves to probation while there is room, and
// otherwise competes with main's victim. The caller holds s.mu for
// writing.
func (s *shard[T]) evict(now func() int64) {
	clk := clock{now: now, t: -1}
	for s.window.n > s.windowMax {
		c := s.windowVictim(&clk)
		if c == reaped {
			continue
		}
		s.unlink(c)
		if len(s.index) <= s.limit {
			s.push(&s.probation, c, inProbation)
			continue
		}
		switch v := s.mainVictim(&clk); {
		case v == reaped:
			s.push(&s.probation, c, inProbation)
		case v == noVictim: // no main space (a shard of one): the new entry wins
			s.drop(c)
		case s.admit(c, v):
			s.drop(v)
			s.push(&s.probation, c, inProbation)
		default:
			s.drop(c)
		}
	}
	for len(s.index) > s.limit { // the window is within its size but main is over
		v := s.mainVictim(&clk)
		if v == noVictim {
			v = s.windowVictim(&clk)
		}
		if v >= 0 {
			s.drop(v)
		}
	}
}

// admit reports whether candidate c should replace victim v: it must be
// more frequent. A warm candidate (6 or more) tied with or beaten by its
// victim is still admitted one time in 1024, so that an attacker whose
// keys collide in the sketch with a hot victim cannot freeze the cache for
// ever (Caffeine admits one in 128; that cost 2 points of hit ratio on a
// loop in bench/cachesim, one in 1024 costs 0.5).
func (s *shard[T]) admit(c, v int32) bool {
	cf, vf := s.freq.estimate(s.slots[c].hash()), s.freq.estimate(s.slots[v].hash())
	if cf > vf {
		return true
	}
	if cf < 6 {
		return false
	}
	s.rand ^= s.rand << 13
	s.rand ^= s.rand >> 7
	s.rand ^= s.rand << 17
	return s.rand&1023 == 0
}

// fold moves e's pending hits into the sketch and reports whether it had
// any. The caller holds s.mu for writing.
func (s *shard[T]) fold(e *slot[T]) bool {
	h := atomic.LoadUint32(&e.hits)
	if h == 0 {
		return false
	}
	atomic.StoreUint32(&e.hits, 0)
	s.freq.add(e.hash(), int(h))
	return true
}

// windowVictim returns the window's cold entry that was not used since the
// policy last looked, moving used ones to the hot end; reaped if it found
// an expired entry first (and removed it); noVictim if the window is
// empty.
func (s *shard[T]) windowVictim(clk *clock) int32 {
	for {
		i := s.window.tail
		if i < 0 {
			return noVictim
		}
		e := &s.slots[i]
		if clk.expired(e.expires) {
			s.expire(i)
			return reaped
		}
		if !s.fold(e) {
			return i
		}
		s.unlink(i)
		s.push(&s.window, i, inWindow)
	}
}

// mainVictim returns probation's cold entry that was not used since the
// policy last looked, promoting used ones to protected (whose overflow
// drops back to probation); reaped if it found an expired entry first;
// noVictim if main is empty.
func (s *shard[T]) mainVictim(clk *clock) int32 {
	for {
		i := s.probation.tail
		if i < 0 {
			if s.protected.n == 0 {
				return noVictim
			}
			s.demote()
			continue
		}
		e := &s.slots[i]
		if clk.expired(e.expires) {
			s.expire(i)
			return reaped
		}
		if !s.fold(e) {
			return i
		}
		s.unlink(i)
		s.push(&s.protected, i, inProtected)
		for s.protected.n > s.protectedMax {
			s.demote()
		}
	}
}

// demote moves protected's cold entry that was not used since the policy
// last looked to the hot end of probation; used ones go back to the hot
// end of protected.
func (s *shard[T]) demote() {
	for {
		i := s.protected.tail
		s.unlink(i)
		if !s.fold(&s.slots[i]) {
			s.push(&s.probation, i, inProbation)
			return
		}
		s.push(&s.protected, i, inProtected)
	}
}

func (s *shard[T]) queueOf(which uint8) *queue {
	switch which {
	case inWindow:
		return &s.window
	case inProbation:
		return &s.probation
	case inProtected:
		return &s.protected
	}
	return nil
}

// push links slot i at the hot end of q.
func (s *shard[T]) push(q *queue, i int32, which uint8) {
	e := &s.slots[i]
	e.setQueue(which)
	e.prev, e.next = -1, q.head
	if q.head >= 0 {
		s.slots[q.head].prev = i
	} else {
		q.tail = i
	}
	q.head = i
	q.n++
}

// unlink takes slot i out of its queue, if it is in one.
func (s *shard[T]) unlink(i int32) {
	e := &s.slots[i]
	q := s.queueOf(e.queue())
	if q == nil {
		return
	}
	if e.prev >= 0 {
		s.slots[e.prev].next = e.next
	} else {
		q.head = e.next
	}
	if e.next >= 0 {
		s.slots[e.next].prev = e.prev
	} else {
		q.tail = e.prev
	}
	e.setQueue(inNone)
	e.prev, e.next = -1, -1
	q.n--
}

// drop evicts slot i.
func (s *shard[T]) drop(i int32) {
	s.remove(i)
	s.evictions.Add(1)
}

// expire removes slot i, expired.
func (s *shard[T]) expire(i int32) {
	s.remove(i)
	s.expirations.Add(1)
}

// remove drops slot i. The caller holds s.mu for writing.
func (s *shard[T]) remove(i int32) {
	s.unlink(i)
	delete(s.index, s.slots[i].key)
	s.slots[i] = slot[T]{} // release the value
	s.free = append(s.free, i)
}

// removeKey drops key's entry and detaches its in-flight load, so the load
// is not stored. key is a view that is not retained. The caller holds s.mu
// for writing. It does not allocate.
func (s *shard[T]) removeKey(key []byte) bool {
	if c, ok := s.inflight[string(key)]; ok {
		delete(s.inflight, c.key)
	}
	if i, ok := s.index[string(key)]; ok {
		s.remove(i)
		return true
	}
	return false
}

// removePrefix drops every entry and detaches every load whose key starts
// with prefix. The caller holds s.mu for writing.
func (s *shard[T]) removePrefix(prefix string) int {
	for k := range s.inflight {
		if strings.HasPrefix(k, prefix) {
			delete(s.inflight, k)
		}
	}
	n := 0
	for k, i := range s.index {
		if strings.HasPrefix(k, prefix) {
			s.remove(i)
			n++
		}
	}
	return n
}

// flush drops everything and detaches every load. The sketch keeps its
// counts: how often keys were used does not go stale with their values.
// The caller holds s.mu for writing.
func (s *shard[T]) flush() {
	clear(s.inflight)
	clear(s.index)
	clear(s.slots) // release the values
	s.slots = s.slots[:0]
	s.free = s.free[:0]
	s.resetQueues()
}
