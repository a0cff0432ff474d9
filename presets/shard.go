package presets

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Storage. A cache is split into shards (a power of two, at most
// maxShards) picked by the xxhash of the key; each shard has its own lock,
// index and CLOCK ring, so operations on different shards never contend.
//
// Eviction is CLOCK (second chance) per shard: the entries live in a slot
// array that is also the clock face; a hit sets the slot's reference bit
// with one atomic store, under the read lock, and never moves anything;
// a store into a full shard sweeps the hand, taking the first slot that is
// expired or unreferenced and clearing the bits it passes. This keeps Get
// a read-locked map lookup that allocates nothing (an LRU list would make
// every hit take the write lock to relink), costs O(1) amortised per
// insert, and approximates LRU: a key read since the hand last passed
// survives one more sweep. New entries start unreferenced, so a one-off
// scan evicts itself before it evicts the working set.

const maxShards = 64

// slot is one entry of a shard's clock face.
type slot[T any] struct {
	key     string
	val     T
	expires int64  // nanoseconds since the cache's base time; 0 = never
	ref     uint32 // CLOCK reference bit; set atomically by readers
	live    bool
}

type shard[T any] struct {
	mu       sync.RWMutex
	index    map[string]int32 // key → slot
	slots    []slot[T]
	free     []int32 // dead slots below len(slots)
	hand     int
	limit    int                 // most entries this shard holds
	inflight map[string]*call[T] // loads whose result may still be stored

	hits, misses, evictions, expirations atomic.Uint64
	_                                    [64]byte // keep neighbouring shards' locks apart
}

func (s *shard[T]) init(limit int) {
	s.limit = limit
	s.index = make(map[string]int32)
	s.inflight = make(map[string]*call[T])
}

// lookup returns key's value if present and not expired at now, marking it
// referenced. The caller holds s.mu (read or write). It does not allocate.
func (s *shard[T]) lookup(key string, now func() int64) (v T, ok, expired bool) {
	i, found := s.index[key]
	if !found {
		return v, false, false
	}
	e := &s.slots[i]
	if e.expires != 0 && now() >= e.expires {
		return v, false, true
	}
	if atomic.LoadUint32(&e.ref) == 0 {
		atomic.StoreUint32(&e.ref, 1)
	}
	return e.val, true, false
}

// store sets key to v, evicting if the shard is full; now is read only if
// the eviction sweep meets an entry with a TTL. The caller holds s.mu for
// writing.
func (s *shard[T]) store(key string, v T, expires int64, now func() int64) {
	if i, ok := s.index[key]; ok {
		e := &s.slots[i]
		e.val, e.expires = v, expires
		return
	}
	i := s.alloc(now)
	s.slots[i] = slot[T]{key: key, val: v, expires: expires, live: true}
	s.index[key] = i
}

// alloc returns a free slot: a dead one, a new one below the limit, or the
// CLOCK victim. The caller holds s.mu for writing.
func (s *shard[T]) alloc(now func() int64) int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return i
	}
	if len(s.slots) < s.limit {
		s.slots = append(s.slots, slot[T]{})
		return int32(len(s.slots) - 1)
	}
	// Every slot is live: at most two laps find a victim, since the first
	// lap clears every reference bit it passes.
	var t int64 = -1 // the time, read once if needed
	for {
		i := int32(s.hand)
		e := &s.slots[i]
		if s.hand++; s.hand == len(s.slots) {
			s.hand = 0
		}
		if e.expires != 0 && t < 0 {
			t = now()
		}
		switch {
		case e.expires != 0 && t >= e.expires:
			s.expirations.Add(1)
		case atomic.LoadUint32(&e.ref) != 0:
			atomic.StoreUint32(&e.ref, 0)
			continue
		default:
			s.evictions.Add(1)
		}
		delete(s.index, e.key)
		*e = slot[T]{}
		return i
	}
}

// remove drops slot i. The caller holds s.mu for writing.
func (s *shard[T]) remove(i int32) {
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

// flush drops everything and detaches every load. The caller holds s.mu
// for writing.
func (s *shard[T]) flush() {
	clear(s.inflight)
	clear(s.index)
	clear(s.slots) // release the values
	s.slots = s.slots[:0]
	s.free = s.free[:0]
	s.hand = 0
}
