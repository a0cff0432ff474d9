package lruadapter_test

import (
	"fmt"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/warpmesh/warpmesh/adapters/internal/meshtest"
	lruadapter "github.com/warpmesh/warpmesh/adapters/lru"
	"github.com/warpmesh/warpmesh/presets"
)

func newLRU(t *testing.T, keys ...string) *lru.Cache[string, string] {
	t.Helper()
	c, err := lru.New[string, string](1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		c.Add(k, "v:"+k)
	}
	return c
}

func has(c *lru.Cache[string, string], k string) bool { return c.Contains(k) }

// An invalidation published on another node removes the key from the
// otter cache; the others stay.
func TestRemoteInvalidationRemovesKey(t *testing.T) {
	m := meshtest.New(t)
	c := newLRU(t, "user:1", "user:2", "order:1")
	att, err := lruadapter.Attach(m.B, c)
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()

	if err := m.A.Invalidate("user:1"); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, 5*time.Second, "user:1 to leave the LRU cache", func() bool { return !has(c, "user:1") })
	if !has(c, "user:2") || !has(c, "order:1") {
		t.Fatal("an exact invalidation removed other keys")
	}

	if err := m.A.InvalidatePrefix("user:"); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, 5*time.Second, "user:* to leave the LRU cache", func() bool { return !has(c, "user:2") })
	if !has(c, "order:1") {
		t.Fatal("a prefix invalidation removed a key outside the prefix")
	}
	if st := att.Stats(); st.RemoteInvalidations != 2 || st.PrefixInvalidations != 1 || st.Flushes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Namespaces: only keys of the attachment's namespace apply, and its
// Invalidate publishes in the namespace.
func TestNamespace(t *testing.T) {
	m := meshtest.New(t)
	c := newLRU(t, "1", "2")
	att, err := lruadapter.Attach(m.B, c, presets.WithNamespace("users"))
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	pub, err := lruadapter.Attach(m.A, newLRU(t), presets.WithNamespace("users"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.A.Invalidate("orders:1"); err != nil {
		t.Fatal(err)
	}
	if err := pub.Invalidate("2"); err != nil { // travels as users:2
		t.Fatal(err)
	}
	meshtest.WaitFor(t, 5*time.Second, "2 to leave the namespaced cache", func() bool { return !has(c, "2") })
	if !has(c, "1") {
		t.Fatal("another namespace's key 1 was applied")
	}
}

// A Gap on the node empties the LRU cache.
func TestGapClearsCache(t *testing.T) {
	m := meshtest.New(t)
	c := newLRU(t, "a", "b", "c")
	att, err := lruadapter.Attach(m.B, c)
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	m.ForceGap(t)
	meshtest.WaitFor(t, 5*time.Second, "the Gap to empty the LRU cache", func() bool { return att.Stats().Flushes > 0 })
	for _, k := range []string{"a", "b", "c"} {
		if has(c, k) {
			t.Fatalf("%s survived a Gap", k)
		}
	}
}

// Applying an exact invalidation allocates nothing in the adapter.
func TestInvalidateDoesNotAllocate(t *testing.T) {
	c := newLRU(t)
	a := lruadapter.New(c)
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = []byte(fmt.Sprint("k", i))
		c.Add(string(keys[i]), "v")
	}
	i := 0
	allocs := testing.AllocsPerRun(len(keys)-1, func() { // runs once more to warm up
		a.Invalidate(keys[i])
		i++
	})
	if allocs != 0 {
		t.Fatalf("Invalidate allocates %.1f times", allocs)
	}
	if c.Len() != 0 {
		t.Fatalf("%d keys not removed", c.Len())
	}
}
