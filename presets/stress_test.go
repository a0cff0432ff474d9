package presets

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/warpmesh/warpmesh/engine"
)

// TestConcurrentMix runs every operation at once on a small cache (so
// eviction runs constantly) for the race detector, then checks the bound
// and that a value read back is one that was written for that key.
func TestConcurrentMix(t *testing.T) {
	const max, keys, rounds = 64, 256, 2000
	c := newLocal[int](t, WithMaxEntries(max))
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprint("k", i)
	}
	var wg sync.WaitGroup
	worker := func(w int, op func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				op((i*7 + w*13) % keys)
			}
		}()
	}
	bad := make(chan string, 1)
	check := func(k, v int) {
		if v%keys != k {
			select {
			case bad <- fmt.Sprintf("key %d holds %d", k, v):
			default:
			}
		}
	}
	for w := range 2 {
		worker(w, func(i int) { c.Set(names[i], i+keys*w) })
		worker(w, func(i int) {
			if v, ok := c.Get(names[i]); ok {
				check(i, v)
			}
		})
		worker(w, func(i int) {
			v, err := c.GetOrLoad(context.Background(), names[i], func(context.Context) (int, error) { return i, nil })
			if err == nil {
				check(i, v)
			}
		})
	}
	worker(0, func(i int) { c.Delete(names[i]) })
	worker(0, func(i int) {
		c.onInvalidate(engine.Invalidation{Key: []byte(names[i]), Origin: c.nodeID + 1})
		if i%64 == 0 {
			c.DeletePrefix("k1")
		}
		if i%200 == 0 {
			c.onEvent(engine.Event{Type: engine.EventGap})
		}
	})
	wg.Wait()
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	if n := c.Len(); n > max {
		t.Fatalf("Len = %d > %d", n, max)
	}
}
