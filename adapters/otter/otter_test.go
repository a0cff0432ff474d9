package otteradapter_test

import (
	"testing"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/warpmesh/warpmesh/adapters/internal/meshtest"
	otteradapter "github.com/warpmesh/warpmesh/adapters/otter"
	"github.com/warpmesh/warpmesh/presets"
)

func newOtter(t *testing.T, keys ...string) *otter.Cache[string, string] {
	t.Helper()
	c, err := otter.New(&otter.Options[string, string]{MaximumSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		c.Set(k, "v:"+k)
	}
	return c
}

func has(c *otter.Cache[string, string], k string) bool {
	_, ok := c.GetIfPresent(k)
	return ok
}

// An invalidation published on another node removes the key from the
// otter cache; the others stay.
func TestRemoteInvalidationRemovesKey(t *testing.T) {
	m := meshtest.New(t)
	c := newOtter(t, "user:1", "user:2", "order:1")
	att, err := otteradapter.Attach(m.B, c)
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()

	if err := m.A.Invalidate("user:1"); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, 5*time.Second, "user:1 to leave the otter cache", func() bool { return !has(c, "user:1") })
	if !has(c, "user:2") || !has(c, "order:1") {
		t.Fatal("an exact invalidation removed other keys")
	}

	if err := m.A.InvalidatePrefix("user:"); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, 5*time.Second, "user:* to leave the otter cache", func() bool { return !has(c, "user:2") })
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
	c := newOtter(t, "1", "2")
	att, err := otteradapter.Attach(m.B, c, presets.WithNamespace("users"))
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	pub, err := otteradapter.Attach(m.A, newOtter(t), presets.WithNamespace("users"))
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

// A Gap on the node empties the otter cache.
func TestGapClearsCache(t *testing.T) {
	m := meshtest.New(t)
	c := newOtter(t, "a", "b", "c")
	att, err := otteradapter.Attach(m.B, c)
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	m.ForceGap(t)
	meshtest.WaitFor(t, 5*time.Second, "the Gap to empty the otter cache", func() bool { return att.Stats().Flushes > 0 })
	for _, k := range []string{"a", "b", "c"} {
		if has(c, k) {
			t.Fatalf("%s survived a Gap", k)
		}
	}
}
