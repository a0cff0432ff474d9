package otteradapter_test

import (
	"testing"

	"github.com/maypok86/otter/v2"

	"github.com/warpmesh/warpmesh/adapters/internal/meshtest"
	otteradapter "github.com/warpmesh/warpmesh/adapters/otter"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// store is an otter cache as the shared adapter suite sees it.
type store struct{ c *otter.Cache[string, string] }

func (s store) Adapter() presets.PrefixInvalidator { return otteradapter.New(s.c) }
func (s store) Attach(n *engine.Node, o ...presets.Option) (*presets.Attachment, error) {
	return otteradapter.Attach(n, s.c, o...)
}
func (s store) Put(k string) { s.c.Set(k, "v:"+k) }
func (s store) Has(k string) bool {
	_, ok := s.c.GetIfPresent(k)
	return ok
}
func (s store) Len() int { return s.c.EstimatedSize() }

// The adapter passes the suite every adapter must pass; Invalidate copies
// the key into a string (otter may keep it) and otter's removal allocates
// once itself: two allocations.
func TestConformance(t *testing.T) {
	meshtest.Conformance(t, meshtest.Subject{
		Name: "otter",
		New: func(t testing.TB) meshtest.Store {
			c, err := otter.New(&otter.Options[string, string]{MaximumSize: 2000})
			if err != nil {
				t.Fatal(err)
			}
			return store{c}
		},
		InvalidateAllocs: 2,
	})
}
