package lruadapter_test

import (
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/warpmesh/warpmesh/adapters/internal/meshtest"
	lruadapter "github.com/warpmesh/warpmesh/adapters/lru"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// store is a golang-lru cache as the shared adapter suite sees it.
type store struct{ c *lru.Cache[string, string] }

func (s store) Adapter() presets.PrefixInvalidator { return lruadapter.New(s.c) }
func (s store) Attach(n *engine.Node, o ...presets.Option) (*presets.Attachment, error) {
	return lruadapter.Attach(n, s.c, o...)
}
func (s store) Put(k string)      { s.c.Add(k, "v:"+k) }
func (s store) Has(k string) bool { return s.c.Contains(k) }
func (s store) Len() int          { return s.c.Len() }

// The adapter passes the suite every adapter must pass; Invalidate hands
// the key to golang-lru as a view and allocates nothing.
func TestConformance(t *testing.T) {
	meshtest.Conformance(t, meshtest.Subject{
		Name: "LRU",
		New: func(t testing.TB) meshtest.Store {
			c, err := lru.New[string, string](2000)
			if err != nil {
				t.Fatal(err)
			}
			return store{c}
		},
		InvalidateAllocs: 0,
	})
}
