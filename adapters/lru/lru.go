package lruadapter

import (
	"strings"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// Cache is a golang-lru cache with string keys seen as a
// presets.PrefixInvalidator.
type Cache[V any] struct {
	c *lru.Cache[string, V]
}

var _ presets.PrefixInvalidator = (*Cache[int])(nil)

// New wraps c.
func New[V any](c *lru.Cache[string, V]) *Cache[V] { return &Cache[V]{c} }

// Invalidate drops key from the LRU cache. It does not allocate: the key
// is handed to Remove as a string view, which golang-lru only looks up
// (an eviction callback receives the stored key, not this one).
func (a *Cache[V]) Invalidate(key []byte) {
	a.c.Remove(unsafe.String(unsafe.SliceData(key), len(key)))
}

// InvalidatePrefix drops every key starting with prefix, visiting every
// key (golang-lru has no ordered index).
func (a *Cache[V]) InvalidatePrefix(prefix []byte) {
	p := string(prefix)
	for _, k := range a.c.Keys() {
		if strings.HasPrefix(k, p) {
			a.c.Remove(k)
		}
	}
}

// InvalidateAll empties the LRU cache.
func (a *Cache[V]) InvalidateAll() { a.c.Purge() }

// Attach wires c to node with presets.Attach: what other members
// invalidate is dropped from c and a Gap empties it. Of the options only
// presets.WithNamespace applies. Close the Attachment to detach; publish
// your own changes with its Invalidate.
func Attach[V any](node *engine.Node, c *lru.Cache[string, V], options ...presets.Option) (*presets.Attachment, error) {
	return presets.Attach(node, New(c), options...)
}
