package presets

import (
	"unsafe"

	"github.com/warpmesh/warpmesh/engine"
)

// onInvalidate applies an invalidation from another member. It runs on the
// node's receive goroutine: it takes one shard lock for an exact key (and
// does not allocate), every shard lock for a prefix. inv.Key is not
// retained.
func (c *Cache[T]) onInvalidate(inv engine.Invalidation) {
	if inv.Origin == c.nodeID || c.closed.Load() {
		return // our own (EchoLocal): already applied by Set or Delete
	}
	key, ok := c.localKey(inv.Key)
	if !ok {
		return
	}
	c.remote.Add(1)
	if inv.Prefix {
		c.deletePrefixLocal(string(key)) // allocates the prefix; prefixes are rare
		return
	}
	if len(key) == 0 {
		return // the bare namespace as an exact key names no entry
	}
	c.deleteLocal(key)
}

// onEvent flushes the cache on a Gap: some invalidation may have been
// missed, and only an empty cache is then certainly not stale.
func (c *Cache[T]) onEvent(e engine.Event) {
	if e.Type != engine.EventGap || c.closed.Load() {
		return
	}
	g := c.node.GapsRaised() // read first: a Gap raised during the flush is not covered by it
	c.flush()
	c.flushes.Add(1)
	c.gapsFlushed.Store(max(g, c.gapsFlushed.Load()))
}

// stringBytes views s as bytes without copying; callers never write to it.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
