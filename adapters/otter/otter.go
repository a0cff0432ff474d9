package otteradapter

import (
	"strings"

	"github.com/maypok86/otter/v2"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// Cache is an otter cache with string keys seen as a
// presets.PrefixInvalidator.
type Cache[V any] struct {
	c *otter.Cache[string, V]
}

var _ presets.PrefixInvalidator = (*Cache[int])(nil)

// New wraps c.
func New[V any](c *otter.Cache[string, V]) *Cache[V] { return &Cache[V]{c} }

// Invalidate drops key from the otter cache. It copies key into a string
// (one allocation): otter takes the key as a string it may keep, and key
// is only a view. otter's own removal allocates once more (measured by
// the adapter suite: two allocations per invalidation in all).
func (a *Cache[V]) Invalidate(key []byte) { a.c.Invalidate(string(key)) }

// InvalidatePrefix drops every key starting with prefix. otter has no
// ordered index, so it visits every key, as presets.Cache.DeletePrefix
// does.
func (a *Cache[V]) InvalidatePrefix(prefix []byte) {
	p := string(prefix)
	for k := range a.c.Keys() {
		if strings.HasPrefix(k, p) {
			a.c.Invalidate(k)
		}
	}
}

// InvalidateAll empties the otter cache.
func (a *Cache[V]) InvalidateAll() { a.c.InvalidateAll() }

// Attach wires c to node with presets.Attach: what other members
// invalidate is dropped from c and a Gap empties it. Of the options only
// presets.WithNamespace applies. Close the Attachment to detach; publish
// your own changes with its Invalidate.
func Attach[V any](node *engine.Node, c *otter.Cache[string, V], options ...presets.Option) (*presets.Attachment, error) {
	return presets.Attach(node, New(c), options...)
}
