package presets

import (
	"context"
	"fmt"
	"testing"
	"time"
)

const propagation = 5 * time.Second // deadline for an invalidation to cross loopback

// fill gives each cache a copy of key without publishing anything (a load
// from the source of truth invalidates no one).
func fill(t *testing.T, key string, value int, cs ...*Cache[int]) {
	t.Helper()
	for _, c := range cs {
		if _, err := c.GetOrLoad(context.Background(), key, func(context.Context) (int, error) { return value, nil }); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Get(key); !ok {
			t.Fatal("filled key missing")
		}
	}
}

func TestMeshSetInvalidatesOthers(t *testing.T) {
	cs := newMesh[int](t, 3)
	a, b, c := cs[0], cs[1], cs[2]
	fill(t, "user:1", 1, b, c)
	fill(t, "user:2", 2, b, c)

	if err := a.Set("user:1", 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, propagation, "B and C to drop user:1", func() bool {
		_, inB := b.Get("user:1")
		_, inC := c.Get("user:1")
		return !inB && !inC
	})
	if v, ok := a.Get("user:1"); !ok || v != 10 {
		t.Fatalf("A lost its own Set: %d, %v", v, ok)
	}
	for _, x := range []*Cache[int]{b, c} {
		if _, ok := x.Get("user:2"); !ok {
			t.Fatal("an invalidation of user:1 dropped user:2")
		}
		if st := x.Stats(); st.RemoteInvalidations != 1 {
			t.Fatalf("RemoteInvalidations = %d, want 1", st.RemoteInvalidations)
		}
	}

	if err := b.Delete("user:2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, propagation, "C to drop user:2 deleted on B", func() bool {
		_, ok := c.Get("user:2")
		return !ok
	})
}

func TestMeshDeletePrefix(t *testing.T) {
	cs := newMesh[int](t, 3)
	a, b, c := cs[0], cs[1], cs[2]
	for i := range 10 {
		fill(t, fmt.Sprintf("user:%d", i), i, a, b, c)
		fill(t, fmt.Sprintf("order:%d", i), i, a, b, c)
	}
	if err := a.DeletePrefix("user:"); err != nil {
		t.Fatal(err)
	}
	if a.Len() != 10 {
		t.Fatalf("A.Len = %d after its own DeletePrefix, want 10", a.Len())
	}
	waitFor(t, propagation, "B and C to drop every user:*", func() bool {
		return b.Len() == 10 && c.Len() == 10
	})
	for _, x := range cs {
		if _, ok := x.Get("order:7"); !ok {
			t.Fatal("DeletePrefix(user:) dropped order:7")
		}
		if _, ok := x.Get("user:7"); ok {
			t.Fatal("user:7 survived DeletePrefix(user:)")
		}
	}
	if st := b.Stats(); st.PrefixInvalidations != 1 || st.RemoteInvalidations != 1 {
		t.Fatalf("B: PrefixInvalidations %d RemoteInvalidations %d; want 1, 1", st.PrefixInvalidations, st.RemoteInvalidations)
	}
}

func TestMeshNamespacesOnSharedNodes(t *testing.T) {
	// Two nodes, each serving a "users" and an "orders" cache: a write to
	// users:1 on one node drops users:1 on the other, not orders:1.
	cs := newMesh[int](t, 2)
	usersA, err := New[int](cs[0].Node(), WithNamespace("users"))
	if err != nil {
		t.Fatal(err)
	}
	usersB, _ := New[int](cs[1].Node(), WithNamespace("users"))
	ordersB, _ := New[int](cs[1].Node(), WithNamespace("orders"))
	fill(t, "1", 1, usersB, ordersB, cs[1])

	if err := usersA.Set("1", 100); err != nil {
		t.Fatal(err)
	}
	waitFor(t, propagation, "users:1 to drop on B", func() bool {
		_, ok := usersB.Get("1")
		return !ok
	})
	// B's handlers see users:1 in registration order (cs[1], usersB,
	// ordersB); a marker published after it and applied by cs[1] proves
	// every handler on B is done with users:1.
	fill(t, "marker", 0, cs[1])
	if err := cs[0].Set("marker", 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, propagation, "the marker", func() bool {
		_, ok := cs[1].Get("marker")
		return !ok
	})
	if _, ok := ordersB.Get("1"); !ok {
		t.Fatal("orders:1 dropped by an invalidation of users:1")
	}
	if _, ok := cs[1].Get("1"); !ok {
		t.Fatal("un-namespaced key 1 dropped by an invalidation of users:1")
	}
}
