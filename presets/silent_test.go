package presets

import (
	"context"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// TestSilentServesNothing: once a member has not been heard for
// SuspectAfter (here: killed, so it never says goodbye), the cache serves
// nothing it holds — the member may have published invalidations this
// node never heard of — until the mesh gives the member up as gone, after
// DeadAfter + RepairTimeout of silence. Loads meanwhile pass through,
// unstored; both are counted.
func TestSilentServesNothing(t *testing.T) {
	a, b := twoNodes(t, func(o *engine.Options) { o.RepairTimeout = 200 * time.Millisecond })
	waitFor(t, 5*time.Second, "b to have heard a within SuspectAfter", func() bool { return !b.Silent() })
	c, err := New[int](b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set("k", 1); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("k"); !ok || v != 1 {
		t.Fatalf("Get with every member heard: %v %v", v, ok)
	}

	// A cache that chose availability serves through the silence.
	lax, err := New[int](b, WithNamespace("lax"), WithServeWhileSilent(true))
	if err != nil {
		t.Fatal(err)
	}
	defer lax.Close()
	if err := lax.Set("k", 5); err != nil {
		t.Fatal(err)
	}

	if err := a.Abort(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to find a silent", b.Silent)
	if v, ok := c.Get("k"); ok {
		t.Fatalf("Get served %v while a member was silent", v)
	}
	v, err := c.GetOrLoad(context.Background(), "k", func(context.Context) (int, error) { return 2, nil })
	if err != nil || v != 2 {
		t.Fatalf("GetOrLoad while a member was silent: %v, %v; want the loader's 2", v, err)
	}
	if v, ok := lax.Get("k"); !ok || v != 5 {
		t.Fatalf("WithServeWhileSilent(true): Get while a member was silent: %v %v, want the 5 held", v, ok)
	}
	if ls := lax.Stats(); ls.SilentMisses != 0 || ls.SilentLoads != 0 {
		t.Fatalf("WithServeWhileSilent(true) counted %d silent misses, %d silent loads", ls.SilentMisses, ls.SilentLoads)
	}
	s := c.Stats()
	if s.SilentMisses < 2 || s.SilentLoads != 1 || s.GapLoads != 0 {
		t.Fatalf("while silent: silent misses %d (want ≥ 2), silent loads %d (want 1), gap loads %d (want 0)", s.SilentMisses, s.SilentLoads, s.GapLoads)
	}

	// The mesh gives a up after DeadAfter + RepairTimeout of silence: by
	// then b has declared it dead, and the cache serves again.
	waitFor(t, 5*time.Second, "b to give a up", func() bool { return !b.Silent() })
	st := b.Members()
	if len(st) != 1 || st[0].State != engine.StateDead {
		t.Fatalf("b stopped waiting for a while a was %+v; want it dead first", st)
	}
	if v, ok := c.Get("k"); !ok || v != 1 {
		t.Fatalf("Get after a was given up: %v %v, want the 1 held", v, ok)
	}
}
