package presets

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
)

// Errors returned by a Cache.
var (
	// ErrClosed is returned after Close. It wraps net.ErrClosed.
	ErrClosed = fmt.Errorf("presets: cache closed: %w", net.ErrClosed)
	// ErrInvalidKey is returned for an empty key, or one too long to travel
	// the mesh (with its namespace, more than codec.MaxKeyLen bytes).
	ErrInvalidKey = errors.New("presets: invalid key")
	// ErrInvalidTTL is returned by SetWithTTL for a negative TTL.
	ErrInvalidTTL = errors.New("presets: invalid TTL")
	// ErrNilNode is returned by New without a node.
	ErrNilNode = errors.New("presets: nil engine node")
	// ErrNilLoader is returned by GetOrLoad without a loader.
	ErrNilLoader = errors.New("presets: nil loader")
	// ErrLoaderPanic is wrapped by the error GetOrLoad returns when the
	// loader panicked.
	ErrLoaderPanic = errors.New("presets: loader panicked")
)

// Cache is a typed in-memory cache kept coherent across the members of a
// mesh, with eventual consistency:
//
//   - Set stores the value locally and invalidates the key on every other
//     member; they drop their copies and reload on their next miss. Values
//     never cross the network. Delete and DeletePrefix drop locally and on
//     every other member.
//   - An invalidation from another member drops the key (or every key with
//     the prefix) here. An engine.EventGap, meaning invalidations may have
//     been missed, flushes the whole cache, so a lost invalidation never
//     leaves a stale entry behind for longer than the gap's detection.
//   - A GetOrLoad whose load started before an invalidation of its key
//     (local Set, Delete or DeletePrefix, remote invalidation, or flush)
//     returns the loaded value to its callers but does not store it.
//   - While a Gap is pending — raised and not flushed for yet, or an
//     open gap past its repair deadline whose event is late because the
//     node's goroutines wait for a CPU (engine.Node.GapPending) — nothing
//     held is served: Get misses and GetOrLoad passes through (counted,
//     Stats.GapMisses, GapLoads). So the staleness bound holds for what
//     readers are served, not only for when the flush runs.
//   - While a member has not been heard for SuspectAfter
//     (engine.Node.Silent: crashed, cut off, or a process not scheduled,
//     this one or the member's), nothing held is served either
//     (Stats.SilentMisses, SilentLoads): it may have published what the
//     node has not heard of. A member stops counting once heard again,
//     and after DeadAfter + RepairTimeout of silence, when the mesh gives
//     it up as gone. Above engine.DirectLimit members this does not apply.
//   - Until the node is ready (engine.Node.Ready: every member has told
//     it from which invalidation on it is in that member's fan-out),
//     nothing is stored: GetOrLoad passes straight through to the loader
//     and Set only invalidates the key elsewhere. A value stored before
//     then could predate an invalidation the node was never sent. Both
//     are counted (Stats.NotReadyLoads, NotReadySets); WaitReady waits.
//
// Size is bounded by WithMaxEntries, split evenly over shards; a full shard
// evicts by W-TinyLFU (a small recency window, then admission to the main
// space by recent frequency), which resists scans and loops and needs no
// write lock on a hit. All methods are safe for concurrent use.
type Cache[T any] struct {
	node      *engine.Node
	ownsNode  bool
	nodeID    uint64
	wire      string // namespace + separator, or "" without a namespace
	ttl       time.Duration
	clock     Clock
	system    bool      // clock is the system clock: read the monotonic clock alone
	base      time.Time // expiry times are nanoseconds since base
	nowFn     func() int64
	shards    []shard[T]
	shardMask uint64
	closed    atomic.Bool
	// unsubscribe removes the cache's handlers from a node it shares.
	unsubscribe []func()

	loads, loadErrors, coalesced, staleLoads atomic.Uint64
	sets, deletes, remote, prefixes, flushes atomic.Uint64
	notReadyLoads, notReadySets              atomic.Uint64
	gapLoads, gapMisses                      atomic.Uint64
	silentLoads, silentMisses                atomic.Uint64
	heedSilence                              bool // not WithServeWhileSilent(true)
	// gapsFlushed is the node's GapsRaised read before the last flush
	// began: while the node says a Gap is pending beyond it, nothing held
	// is served (engine.Node.GapPending).
	gapsFlushed atomic.Uint64
}

// NewMeshEventual starts a node with opts and returns a cache that owns it:
// Close closes the node. Cache options are validated before the node
// starts; on any error nothing is left running and the cache is nil.
func NewMeshEventual[T any](opts engine.Options, options ...Option) (*Cache[T], error) {
	cfg, err := resolve(options)
	if err != nil {
		return nil, err
	}
	node, err := engine.New(opts)
	if err != nil {
		return nil, fmt.Errorf("presets: start node: %w", err)
	}
	return newCache[T](node, cfg, true), nil
}

// New returns a cache that publishes and receives through an existing
// node, so several caches can share one node; give each its own
// WithNamespace. The cache does not own the node: Close leaves it running.
//
// Close unregisters the cache's handlers from the node; one still running
// then finds the cache closed and ignores what it was given.
func New[T any](node *engine.Node, options ...Option) (*Cache[T], error) {
	if node == nil {
		return nil, ErrNilNode
	}
	cfg, err := resolve(options)
	if err != nil {
		return nil, err
	}
	return newCache[T](node, cfg, false), nil
}

func newCache[T any](node *engine.Node, cfg *config, owns bool) *Cache[T] {
	n := shardCount(cfg.maxEntries)
	c := &Cache[T]{
		node:      node,
		ownsNode:  owns,
		nodeID:    node.ID(),
		ttl:       cfg.ttl,
		clock:     cfg.clock,
		base:      cfg.clock.Now(),
		shards:    make([]shard[T], n),
		shardMask: uint64(n - 1),
	}
	c.heedSilence = !cfg.ignoreSilence
	if cfg.namespace != "" {
		c.wire = cfg.namespace + string(rune(NamespaceSeparator))
	}
	_, c.system = cfg.clock.(systemClock)
	c.nowFn = c.now
	base, extra := cfg.maxEntries/n, cfg.maxEntries%n
	for i := range c.shards {
		limit := base
		if i < extra {
			limit++
		}
		c.shards[i].init(limit)
	}
	c.gapsFlushed.Store(node.GapsRaised()) // an empty cache holds nothing earlier Gaps could concern
	c.unsubscribe = append(c.unsubscribe, node.OnInvalidate(c.onInvalidate), node.OnEvent(c.onEvent))
	return c
}

// shardCount is the largest power of two that is at most maxShards and
// leaves every shard at least minShardEntries (one shard for fewer): the
// eviction policy judges within a shard, and small shards judge worse.
func shardCount(maxEntries int) int {
	n := maxEntries / minShardEntries
	if n >= maxShards {
		return maxShards
	}
	if n < 1 {
		return 1
	}
	return 1 << (bits.Len(uint(n)) - 1)
}

// now returns the time in nanoseconds since c.base: monotonic, so expiry
// ignores wall clock steps. With the system clock it reads only the
// monotonic clock (time.Since), about half the cost of time.Now.
func (c *Cache[T]) now() int64 {
	if c.system {
		return int64(time.Since(c.base))
	}
	return int64(c.clock.Now().Sub(c.base))
}

func (c *Cache[T]) shardOf(h uint64) *shard[T] { return &c.shards[h&c.shardMask] }

// Node returns the node the cache publishes through.
func (c *Cache[T]) Node() *engine.Node { return c.node }

// WaitReady blocks until the cache's node is ready (engine.Node.WaitReady):
// from then on loaded and set values are stored.
func (c *Cache[T]) WaitReady(ctx context.Context) error { return c.node.WaitReady(ctx) }

// Get returns key's value if the cache holds it and it has not expired.
// A hit does not allocate.
func (c *Cache[T]) Get(key string) (T, bool) {
	s := c.shardOf(xxhash.Sum64String(key))
	st, free := s.mu.tryRLock() // RLock, inlined
	if !free {
		s.mu.rlockSlow(st)
	}
	v, ok, expired := s.lookup(key, c.nowFn)
	st.RUnlock()
	if ok && c.node.GapPending(c.gapsFlushed.Load()) {
		// A Gap is on its way (raised, or overdue, and not flushed for):
		// what we hold may be stale; the flush follows.
		c.gapMisses.Add(1)
		var zero T
		return zero, false
	}
	if ok && c.heedSilence && c.node.Silent() {
		// A member has not been heard for SuspectAfter: it may have
		// published what the node has not heard of.
		c.silentMisses.Add(1)
		var zero T
		return zero, false
	}
	if ok {
		st.hits.Add(1)
		return v, true
	}
	st.misses.Add(1)
	if expired {
		c.reap(s, key)
	}
	return v, false
}

// reap removes key if it is still expired.
func (c *Cache[T]) reap(s *shard[T], key string) {
	s.mu.Lock()
	if i, ok := s.index[key]; ok {
		if e := &s.slots[i]; e.expires != 0 && c.now() >= e.expires {
			s.remove(i)
			s.expirations.Add(1)
		}
	}
	s.mu.Unlock()
}

// Set stores value under key with the default TTL (WithTTL) and
// invalidates key on every other member. A load of key in flight here is
// not stored afterwards, so it cannot overwrite value. The value is stored
// locally even when publishing fails (the node was closed); the error says
// so. Set waits while the node's publish ring is full.
func (c *Cache[T]) Set(key string, value T) error {
	return c.set(key, value, c.ttl)
}

// SetWithTTL is Set with a TTL of its own; zero means the entry never
// expires, and a negative TTL returns ErrInvalidTTL.
func (c *Cache[T]) SetWithTTL(key string, value T, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: %v", ErrInvalidTTL, ttl)
	}
	return c.set(key, value, ttl)
}

func (c *Cache[T]) set(key string, value T, ttl time.Duration) error {
	if err := c.checkKey(key); err != nil {
		return err
	}
	if c.closed.Load() {
		return ErrClosed
	}
	var expires int64
	if ttl > 0 {
		expires = c.now() + int64(ttl)
	}
	if !c.node.Ready() {
		// Not coherent yet: storing could keep a value an invalidation we
		// were never sent made stale. Invalidate elsewhere all the same.
		c.deleteLocal(stringBytes(key))
		c.notReadySets.Add(1)
		c.sets.Add(1)
		return c.publish(key, false)
	}
	s := c.shardOf(xxhash.Sum64String(key))
	s.mu.Lock()
	if c.closed.Load() { // checked under the lock Close flushes with: nothing outlives Close
		s.mu.Unlock()
		return ErrClosed
	}
	if cl, ok := s.inflight[key]; ok {
		delete(s.inflight, cl.key)
	}
	s.store(key, value, expires, c.nowFn)
	s.mu.Unlock()
	c.sets.Add(1)
	return c.publish(key, false)
}

// Delete drops key here and on every other member.
func (c *Cache[T]) Delete(key string) error {
	if err := c.checkKey(key); err != nil {
		return err
	}
	if c.closed.Load() {
		return ErrClosed
	}
	c.deleteLocal(stringBytes(key))
	c.deletes.Add(1)
	return c.publish(key, false)
}

// DeletePrefix drops every key starting with prefix here and on every
// other member. It visits every entry of the cache. With a namespace, an
// empty prefix clears the namespace everywhere; without one, an empty
// prefix returns ErrInvalidKey.
func (c *Cache[T]) DeletePrefix(prefix string) error {
	if prefix != "" || c.wire == "" {
		if err := c.checkKey(prefix); err != nil {
			return err
		}
	}
	if c.closed.Load() {
		return ErrClosed
	}
	c.deletePrefixLocal(prefix)
	return c.publish(prefix, true)
}

func (c *Cache[T]) deleteLocal(key []byte) {
	s := c.shardOf(xxhash.Sum64(key))
	s.mu.Lock()
	s.removeKey(key)
	s.mu.Unlock()
}

func (c *Cache[T]) deletePrefixLocal(prefix string) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.removePrefix(prefix)
		s.mu.Unlock()
	}
	c.prefixes.Add(1)
}

// flush drops every entry and detaches every load in flight.
func (c *Cache[T]) flush() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.flush()
		s.mu.Unlock()
	}
}

func (c *Cache[T]) checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(c.wire)+len(key) > codec.MaxKeyLen:
		return fmt.Errorf("%w: %d bytes with namespace, more than %d", ErrInvalidKey, len(c.wire)+len(key), codec.MaxKeyLen)
	}
	return nil
}

// Len returns the number of entries held, counting expired entries not
// yet reclaimed (a Get of one, or the eviction sweep, reclaims it).
func (c *Cache[T]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		st := s.mu.RLock()
		n += len(s.index)
		st.RUnlock()
	}
	return n
}

// Close drops every entry, cancels the contexts of loads in flight (their
// callers still get what the loader returns) and, when the cache started
// its node (NewMeshEventual), closes the node. Later calls to Set, Delete,
// DeletePrefix and GetOrLoad return ErrClosed; Get misses. Close is
// idempotent: later calls return nil.
func (c *Cache[T]) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, cl := range s.inflight {
			cl.cancel()
		}
		s.flush()
		s.mu.Unlock()
	}
	if c.ownsNode {
		return c.node.Close()
	}
	for _, u := range c.unsubscribe {
		u()
	}
	return nil
}

// publish sends an invalidation of key (a prefix when prefix is set),
// namespaced, to the other members.
func (c *Cache[T]) publish(key string, prefix bool) error {
	var err error
	if c.wire == "" {
		err = c.node.Publish(context.Background(), stringBytes(key), prefix)
	} else {
		var buf [256]byte // the wire key is built on the stack when it fits
		b := append(append(buf[:0], c.wire...), key...)
		err = c.node.Publish(context.Background(), b, prefix)
	}
	if err != nil {
		return fmt.Errorf("presets: publish invalidation of %q: %w", key, err)
	}
	return nil
}

// localKey strips the namespace from a mesh key; ok is false when the key
// belongs to another namespace. It does not allocate.
func (c *Cache[T]) localKey(wire []byte) (key []byte, ok bool) {
	if c.wire == "" {
		return wire, true
	}
	if len(wire) < len(c.wire) || string(wire[:len(c.wire)]) != c.wire {
		return nil, false
	}
	return wire[len(c.wire):], true
}
