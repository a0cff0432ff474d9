package presets

import (
	"context"
	"testing"
	"time"
)

// TestGapPendingServesNothing: between a Gap being raised and the cache's
// flush for it (the event goroutine may wait for a CPU, or a handler
// registered before the cache's is slow), the cache serves nothing it
// holds: Get misses and GetOrLoad passes through, unstored. After the
// flush it serves again.
func TestGapPendingServesNothing(t *testing.T) {
	a, b := twoNodes(t, nil)
	// A handler ahead of the cache's holds the Gap event up.
	seen, release := holdGaps(t, b)
	c, err := New[int](b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set("k", 1); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("k"); !ok || v != 1 {
		t.Fatalf("Get before the Gap: %v %v", v, ok)
	}

	if err := a.DeclareLoss(); err != nil { // b raises a Gap for a's skipped sequence
		t.Fatal(err)
	}
	<-seen
	if v, ok := c.Get("k"); ok {
		t.Fatalf("Get served %v while a Gap was raised and not flushed for", v)
	}
	v, err := c.GetOrLoad(context.Background(), "k", func(context.Context) (int, error) { return 2, nil })
	if err != nil || v != 2 {
		t.Fatalf("GetOrLoad while a Gap was pending: %v, %v; want the loader's 2", v, err)
	}
	if _, ok := c.Get("k"); ok {
		t.Fatal("a value loaded while a Gap was pending was stored")
	}
	s := c.Stats()
	if s.GapMisses < 2 || s.GapLoads != 1 || s.Flushes != 0 {
		t.Fatalf("while pending: gap misses %d (want ≥ 2), gap loads %d (want 1), flushes %d (want 0)", s.GapMisses, s.GapLoads, s.Flushes)
	}

	release()
	waitFor(t, 5*time.Second, "the cache's flush", func() bool { return c.Stats().Flushes == 1 })
	if err := c.Set("k", 3); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("k"); !ok || v != 3 {
		t.Fatalf("Get after the flush: %v %v, want 3 served", v, ok)
	}
}
