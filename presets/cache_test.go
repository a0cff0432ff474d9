package presets

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
)

func TestSetGetDelete(t *testing.T) {
	c := newLocal[string](t)
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache hit")
	}
	if err := c.Set("a", "1"); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("a"); !ok || v != "1" {
		t.Fatalf("Get = %q, %v; want 1, true", v, ok)
	}
	if err := c.Set("a", "2"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get("a"); v != "2" || c.Len() != 1 {
		t.Fatalf("after overwrite Get = %q, Len = %d", v, c.Len())
	}
	if err := c.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("a"); ok || c.Len() != 0 {
		t.Fatal("deleted key still present")
	}
	st := c.Stats()
	if st.Hits != 2 || st.Misses != 2 || st.Sets != 2 || st.Deletes != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeletePrefixLocal(t *testing.T) {
	c := newLocal[int](t)
	for i := range 20 {
		c.Set(fmt.Sprintf("user:%d", i), i)
		c.Set(fmt.Sprintf("order:%d", i), i)
	}
	if err := c.DeletePrefix("user:"); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 20 {
		t.Fatalf("Len = %d, want 20", c.Len())
	}
	if _, ok := c.Get("user:3"); ok {
		t.Fatal("user:3 survived DeletePrefix")
	}
	if _, ok := c.Get("order:3"); !ok {
		t.Fatal("order:3 removed by DeletePrefix(user:)")
	}
	if st := c.Stats(); st.PrefixInvalidations != 1 {
		t.Fatalf("PrefixInvalidations = %d", st.PrefixInvalidations)
	}
}

func TestTTLWithFakeClock(t *testing.T) {
	clk := newFakeClock()
	c := newLocal[string](t, WithTTL(time.Minute), WithClock(clk))
	c.Set("default", "x")
	c.SetWithTTL("short", "y", time.Second)
	c.SetWithTTL("forever", "z", 0)

	clk.Advance(999 * time.Millisecond)
	if _, ok := c.Get("short"); !ok {
		t.Fatal("short expired early")
	}
	clk.Advance(time.Millisecond)
	if _, ok := c.Get("short"); ok {
		t.Fatal("short did not expire at its TTL")
	}
	if _, ok := c.Get("default"); !ok {
		t.Fatal("default expired early")
	}
	clk.Advance(time.Minute)
	if _, ok := c.Get("default"); ok {
		t.Fatal("default did not expire after WithTTL")
	}
	clk.Advance(1000 * time.Hour)
	if v, ok := c.Get("forever"); !ok || v != "z" {
		t.Fatal("TTL 0 entry expired")
	}
	if st := c.Stats(); st.Expirations != 2 || c.Len() != 1 {
		t.Fatalf("Expirations = %d, Len = %d; want 2, 1", st.Expirations, c.Len())
	}
	if err := c.SetWithTTL("k", "v", -time.Second); !errors.Is(err, ErrInvalidTTL) {
		t.Fatalf("negative TTL: %v", err)
	}
}

func TestEvictionBoundsSize(t *testing.T) {
	for _, max := range []int{1, 10, 100, 1000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			c := newLocal[int](t, WithMaxEntries(max))
			for i := range 5 * max {
				c.Set(fmt.Sprint("k", i), i)
				if i%(max/10+1) == 0 && c.Len() > max {
					t.Fatalf("Len = %d > %d after %d sets", c.Len(), max, i+1)
				}
			}
			st := c.Stats()
			if st.Entries > max {
				t.Fatalf("Len = %d > %d", st.Entries, max)
			}
			if st.Evictions == 0 || uint64(st.Entries)+st.Evictions != uint64(5*max) {
				t.Fatalf("Entries %d + Evictions %d != %d", st.Entries, st.Evictions, 5*max)
			}
		})
	}
}

func TestEvictionPrefersUnreferenced(t *testing.T) {
	c := newLocal[int](t, WithMaxEntries(1))
	c.Set("a", 1)
	c.Set("b", 2) // evicts a (the only slot)
	if _, ok := c.Get("a"); ok {
		t.Fatal("a survived in a one-entry cache")
	}

	c2 := newLocal[int](t, WithMaxEntries(2)) // one shard of two
	same := []string{"k0", "k1", "k2"}
	c2.Set(same[0], 0)
	c2.Set(same[1], 1)
	c2.Get(same[0])    // referenced: gets a second chance
	c2.Set(same[2], 2) // full shard: evicts the unreferenced same[1]
	if _, ok := c2.Get(same[0]); !ok {
		t.Fatal("referenced entry evicted")
	}
	if _, ok := c2.Get(same[1]); ok {
		t.Fatal("unreferenced entry survived")
	}
}

func TestKeyErrors(t *testing.T) {
	c := newLocal[int](t, WithNamespace("ns"))
	long := strings.Repeat("x", codec.MaxKeyLen-len("ns:")+1)
	for name, err := range map[string]error{
		"Set empty":        c.Set("", 1),
		"Set too long":     c.Set(long, 1),
		"Delete empty":     c.Delete(""),
		"DeletePrefix big": c.DeletePrefix(long),
	} {
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: %v, want ErrInvalidKey", name, err)
		}
	}
	if err := c.Set(long[1:], 1); err != nil {
		t.Errorf("longest key rejected: %v", err)
	}
	if err := c.DeletePrefix(""); err != nil {
		t.Errorf("DeletePrefix(\"\") with a namespace: %v", err)
	}
	if c.Len() != 0 {
		t.Errorf("DeletePrefix(\"\") left %d entries", c.Len())
	}
	plain := newLocal[int](t)
	if err := plain.DeletePrefix(""); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("DeletePrefix(\"\") without a namespace: %v", err)
	}
}

func TestConstructorErrors(t *testing.T) {
	port := freePorts(t, 1)[0]
	cases := []struct {
		name   string
		engine engine.Options
		opts   []Option
		want   error
		option string
	}{
		{"negative TTL", loopback(port), []Option{WithTTL(-1)}, ErrInvalidOption, "WithTTL"},
		{"zero max", loopback(port), []Option{WithMaxEntries(0)}, ErrInvalidOption, "WithMaxEntries"},
		{"nil clock", loopback(port), []Option{WithClock(nil)}, ErrInvalidOption, "WithClock"},
		{"separator in namespace", loopback(port), []Option{WithNamespace("a:b")}, ErrInvalidOption, "WithNamespace"},
		{"long namespace", loopback(port), []Option{WithNamespace(strings.Repeat("n", 256))}, ErrInvalidOption, "WithNamespace"},
		{"zero Option", loopback(port), []Option{{}}, ErrInvalidOption, "Option"},
		{"bad engine port", func() engine.Options { o := loopback(port); o.Port = 70000; return o }(), nil, engine.ErrInvalidOption, ""},
		{"bad engine peer", func() engine.Options { o := loopback(port); o.Peers = []string{"nope"}; return o }(), nil, engine.ErrInvalidOption, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewMeshEventual[int](tc.engine, tc.opts...)
			if c != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got cache %t, error %v; want no cache, %v", c != nil, err, tc.want)
			}
			var oe *OptionError
			if tc.option != "" && (!errors.As(err, &oe) || oe.Option != tc.option) {
				t.Fatalf("error %v does not name option %s", err, tc.option)
			}
		})
	}
	// Bad cache options must not have started a node: the port is free.
	c, err := NewMeshEventual[int](loopback(port))
	if err != nil {
		t.Fatalf("port left bound by a failed constructor: %v", err)
	}
	c.Close()

	if _, err := New[int](nil); !errors.Is(err, ErrNilNode) {
		t.Fatalf("New(nil): %v", err)
	}
}

func TestSharedNodeNamespaces(t *testing.T) {
	node, err := engine.New(loopback(freePorts(t, 1)[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	waitReady(t, node)
	users, err := New[string](node, WithNamespace("users"))
	if err != nil {
		t.Fatal(err)
	}
	orders, err := New[int](node, WithNamespace("orders"))
	if err != nil {
		t.Fatal(err)
	}
	users.Set("1", "alice")
	orders.Set("1", 100)
	if v, _ := users.Get("1"); v != "alice" {
		t.Fatalf("users[1] = %q", v)
	}
	if v, _ := orders.Get("1"); v != 100 {
		t.Fatalf("orders[1] = %d", v)
	}
	// A remote invalidation of users:1 touches users only.
	remote := node.ID() + 1
	users.onInvalidate(engine.Invalidation{Key: []byte("users:1"), Origin: remote})
	orders.onInvalidate(engine.Invalidation{Key: []byte("users:1"), Origin: remote})
	if _, ok := users.Get("1"); ok {
		t.Fatal("users:1 not invalidated")
	}
	if _, ok := orders.Get("1"); !ok {
		t.Fatal("orders:1 dropped by an invalidation of users:1")
	}
	// A remote prefix over the whole namespace.
	orders.Set("2", 200)
	users.Set("2", "bob")
	orders.onInvalidate(engine.Invalidation{Key: []byte("orders:"), Prefix: true, Origin: remote})
	users.onInvalidate(engine.Invalidation{Key: []byte("orders:"), Prefix: true, Origin: remote})
	if orders.Len() != 0 || users.Len() != 1 {
		t.Fatalf("after prefix orders: orders.Len %d users.Len %d; want 0, 1", orders.Len(), users.Len())
	}
	// Closing a cache that does not own the node leaves the node running.
	if err := users.Close(); err != nil {
		t.Fatal(err)
	}
	if err := orders.Set("3", 3); err != nil {
		t.Fatalf("node closed with a cache that does not own it: %v", err)
	}
	if err := users.Set("3", "c"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	c, err := NewMeshEventual[int](loopback(freePorts(t, 1)[0]))
	if err != nil {
		t.Fatal(err)
	}
	c.Set("a", 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := c.Get("a"); ok {
		t.Fatal("Get hit after Close")
	}
	if err := c.Delete("a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Delete after Close: %v", err)
	}
	if err := c.Node().Invalidate("x"); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("owned node still open after Close: %v", err)
	}
}

func TestShardCount(t *testing.T) {
	for _, tc := range []struct{ max, want int }{{1, 1}, {511, 1}, {1023, 1}, {1024, 2}, {10_000, 16}, {32 * 1024, 64}, {1 << 20, 64}} {
		if got := shardCount(tc.max); got != tc.want {
			t.Errorf("shardCount(%d) = %d, want %d", tc.max, got, tc.want)
		}
	}
}
