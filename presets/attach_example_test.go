package presets_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// sessions stands for a cache a service already has; it becomes mesh
// invalidated by implementing presets.Invalidator.
type sessions struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *sessions) Invalidate(key []byte) {
	s.mu.Lock()
	delete(s.m, string(key)) // the conversion in a map index does not allocate
	s.mu.Unlock()
}

func (s *sessions) InvalidateAll() {
	s.mu.Lock()
	clear(s.m)
	s.mu.Unlock()
}

func (s *sessions) has(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	return ok
}

func ExampleAttach() {
	seed, err := engine.New(localNode(engine.AnyPort))
	if err != nil {
		panic(err)
	}
	defer seed.Close()
	node, err := engine.New(localNode(engine.AnyPort, seed.Addr().String()))
	if err != nil {
		panic(err)
	}
	defer node.Close()
	// Attach flushes the cache when the node becomes ready (values stored
	// before may be stale): fill it once the node is ready.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := node.WaitReady(ctx); err != nil {
		panic(err)
	}
	waitUntil(func() bool { return seed.Ready() && node.Stats().MembersAlive == 1 && seed.Stats().MembersAlive == 1 })

	// The service's own cache, on node, in namespace "sess".
	local := &sessions{m: map[string]string{"alice": "token-1", "bob": "token-2"}}
	att, err := presets.Attach(node, local, presets.WithNamespace("sess"))
	if err != nil {
		panic(err)
	}
	defer att.Close()

	// Another instance changes alice's session and tells the mesh.
	other, err := presets.Attach(seed, &sessions{m: map[string]string{}}, presets.WithNamespace("sess"))
	if err != nil {
		panic(err)
	}
	if err := other.Invalidate("alice"); err != nil {
		panic(err)
	}
	waitUntil(func() bool { return !local.has("alice") })
	fmt.Println("alice cached:", local.has("alice"))
	fmt.Println("bob cached:", local.has("bob"))
	// Output:
	// alice cached: false
	// bob cached: true
}
