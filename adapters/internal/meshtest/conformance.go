package meshtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// Store is one cache of string values seen through the adapter under
// test. The adapter modules' tests implement it in a few lines around
// their cache library.
type Store interface {
	// Adapter is the cache wrapped by the adapter's New, as
	// presets.Attach receives it.
	Adapter() presets.PrefixInvalidator
	// Attach wires the cache to node with the adapter's own Attach.
	Attach(node *engine.Node, options ...presets.Option) (*presets.Attachment, error)
	// Put stores a value under key.
	Put(key string)
	// Has reports whether key is cached.
	Has(key string) bool
	// Len is the number of keys cached.
	Len() int
}

// Subject describes an adapter for Conformance.
type Subject struct {
	// Name names the cache library in failure messages ("otter").
	Name string
	// New returns an empty Store.
	New func(t testing.TB) Store
	// InvalidateAllocs is how many allocations one exact invalidation may
	// make in the adapter: 0 where the key is handed on as a view, 1
	// where the library may keep the key and it must be copied.
	InvalidateAllocs float64
}

// Conformance runs the behaviour every cache adapter promises on two real
// nodes: a remote exact or prefix invalidation removes what it names and
// nothing else, only the attachment's namespace applies, a Gap empties
// the cache, and an exact invalidation allocates at most
// s.InvalidateAllocs times.
func Conformance(t *testing.T, s Subject) {
	fill := func(t *testing.T, keys ...string) Store {
		t.Helper()
		c := s.New(t)
		for _, k := range keys {
			c.Put(k)
		}
		return c
	}
	attach := func(t *testing.T, c Store, node *engine.Node, options ...presets.Option) *presets.Attachment {
		t.Helper()
		att, err := c.Attach(node, options...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { att.Close() })
		return att
	}
	gone := func(c Store, key string) func() bool { return func() bool { return !c.Has(key) } }

	t.Run("RemoteInvalidation", func(t *testing.T) {
		m := New(t)
		c := fill(t, "user:1", "user:2", "order:1")
		att := attach(t, c, m.B)
		if err := m.A.Invalidate("user:1"); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, 5*time.Second, "user:1 to leave the "+s.Name+" cache", gone(c, "user:1"))
		if !c.Has("user:2") || !c.Has("order:1") {
			t.Fatal("an exact invalidation removed other keys")
		}
		if err := m.A.InvalidatePrefix("user:"); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, 5*time.Second, "user:* to leave the "+s.Name+" cache", gone(c, "user:2"))
		if !c.Has("order:1") {
			t.Fatal("a prefix invalidation removed a key outside the prefix")
		}
		if st := att.Stats(); st.RemoteInvalidations != 2 || st.PrefixInvalidations != 1 || st.Flushes != 0 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("Namespace", func(t *testing.T) {
		m := New(t)
		c := fill(t, "1", "2")
		attach(t, c, m.B, presets.WithNamespace("users"))
		pub := attach(t, fill(t), m.A, presets.WithNamespace("users"))
		if err := m.A.Invalidate("orders:1"); err != nil {
			t.Fatal(err)
		}
		if err := pub.Invalidate("2"); err != nil { // travels as users:2
			t.Fatal(err)
		}
		WaitFor(t, 5*time.Second, "2 to leave the namespaced cache", gone(c, "2"))
		if !c.Has("1") {
			t.Fatal("another namespace's key 1 was applied")
		}
	})

	t.Run("GapClearsCache", func(t *testing.T) {
		m := New(t)
		c := fill(t, "a", "b", "c")
		att := attach(t, c, m.B)
		m.ForceGap(t)
		WaitFor(t, 5*time.Second, "the Gap to empty the "+s.Name+" cache", func() bool { return att.Stats().Flushes > 0 })
		for _, k := range []string{"a", "b", "c"} {
			if c.Has(k) {
				t.Fatalf("%s survived a Gap", k)
			}
		}
	})

	t.Run("InvalidateAllocs", func(t *testing.T) {
		c := s.New(t)
		a := c.Adapter()
		keys := make([][]byte, 1000)
		for i := range keys {
			keys[i] = []byte(fmt.Sprint("k", i))
			c.Put(string(keys[i]))
		}
		i := 0
		allocs := testing.AllocsPerRun(len(keys)-1, func() { // runs once more to warm up
			a.Invalidate(keys[i])
			i++
		})
		if allocs > s.InvalidateAllocs {
			t.Fatalf("Invalidate allocates %.1f times, want at most %.0f", allocs, s.InvalidateAllocs)
		}
		if n := c.Len(); n != 0 {
			t.Fatalf("%d keys not removed", n)
		}
	})
}
