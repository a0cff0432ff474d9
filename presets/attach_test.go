package presets

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// mapCache is a minimal Invalidator over a map, without prefix support.
type mapCache struct {
	mu   sync.Mutex
	m    map[string]int
	alls int
}

func newMapCache(keys ...string) *mapCache {
	c := &mapCache{m: make(map[string]int)}
	for i, k := range keys {
		c.m[k] = i
	}
	return c
}

func (c *mapCache) Invalidate(key []byte) {
	c.mu.Lock()
	delete(c.m, string(key))
	c.mu.Unlock()
}

func (c *mapCache) InvalidateAll() {
	c.mu.Lock()
	clear(c.m)
	c.alls++
	c.mu.Unlock()
}

func (c *mapCache) has(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

func (c *mapCache) set(k string, v int) {
	c.mu.Lock()
	c.m[k] = v
	c.mu.Unlock()
}

func (c *mapCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// prefixMapCache can also drop a prefix.
type prefixMapCache struct{ *mapCache }

func (c prefixMapCache) InvalidatePrefix(p []byte) {
	c.mu.Lock()
	for k := range c.m {
		if strings.HasPrefix(k, string(p)) {
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
}

var (
	_ Invalidator       = (*mapCache)(nil)
	_ PrefixInvalidator = prefixMapCache{}
)

func TestAttachAppliesRemoteInvalidations(t *testing.T) {
	a, b := twoNodes(t, nil)
	plain := newMapCache("k1", "k2", "user:1", "user:2", "order:1")
	ap, err := Attach(b, plain)
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	pfx := prefixMapCache{newMapCache("k1", "user:1", "user:2", "order:1")}
	if _, err := Attach(b, pfx); err != nil {
		t.Fatal(err)
	}
	ns := newMapCache("k1", "k2")
	if _, err := Attach(b, ns, WithNamespace("ns")); err != nil {
		t.Fatal(err)
	}
	own := newMapCache("k3")
	ao, err := Attach(a, own) // on the publishing node: its own invalidations do not apply
	if err != nil {
		t.Fatal(err)
	}

	if err := a.Invalidate("k1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "k1 dropped on b", func() bool { return !plain.has("k1") && !pfx.has("k1") })
	if !ns.has("k1") {
		t.Fatal("an un-namespaced key dropped k1 from the namespaced cache")
	}
	if err := a.Invalidate("ns:k1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "ns:k1 dropped on b", func() bool { return !ns.has("k1") })

	if err := a.InvalidatePrefix("user:"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "user: dropped on b", func() bool { return !pfx.has("user:1") && plain.len() == 0 })
	if !pfx.has("order:1") {
		t.Fatal("the prefix invalidation dropped order:1 from a cache that can drop prefixes")
	}
	if st := ap.Stats(); st.RemoteInvalidations < 2 || st.PrefixInvalidations != 1 || st.Flushes != 1 {
		t.Fatalf("plain cache stats %+v: want the prefix to flush it", st)
	}

	plain.set("k3", 3)
	if err := ao.Invalidate("k3"); err != nil { // publishes from a
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "k3 dropped on b", func() bool { return !plain.has("k3") })
	if !own.has("k3") {
		t.Fatal("a node applied its own invalidation to its attached cache")
	}
}

func TestAttachGapFlushesAndCloseDetaches(t *testing.T) {
	a, b := twoNodes(t, nil)
	c := prefixMapCache{newMapCache("x", "y")}
	at, err := Attach(b, c)
	if err != nil {
		t.Fatal(err)
	}
	at.onEvent(engine.Event{Type: engine.EventJoin})
	if c.len() != 2 {
		t.Fatal("a join event flushed the attached cache")
	}
	at.onEvent(engine.Event{Type: engine.EventGap, Gap: engine.Gap{Origin: a.ID(), Missing: 1, Reason: engine.GapEvicted}})
	if c.len() != 0 || at.Stats().Flushes != 1 {
		t.Fatalf("after a Gap: %d entries, %d flushes", c.len(), at.Stats().Flushes)
	}

	c.set("z", 1)
	if err := at.Close(); err != nil {
		t.Fatal(err)
	}
	if err := at.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := at.Invalidate("z"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invalidate after Close: %v", err)
	}
	// A later cache on b still sees invalidations; the detached one does not.
	later := newMapCache("z")
	if _, err := Attach(b, later); err != nil {
		t.Fatal(err)
	}
	if err := a.Invalidate("z"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "z dropped from the attached cache", func() bool { return !later.has("z") })
	if !c.has("z") {
		t.Fatal("a detached cache still applies invalidations")
	}
}

func TestAttachErrors(t *testing.T) {
	n := newLocal[int](t).Node()
	if _, err := Attach(nil, newMapCache()); !errors.Is(err, ErrNilNode) {
		t.Fatalf("nil node: %v", err)
	}
	if _, err := Attach(n, nil); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("nil cache: %v", err)
	}
	var oe *OptionError
	if _, err := Attach(n, newMapCache(), WithTTL(time.Second)); !errors.As(err, &oe) || oe.Option != "WithTTL" {
		t.Fatalf("WithTTL: %v", err)
	}
	if _, err := Attach(n, newMapCache(), WithNamespace("a:b")); !errors.As(err, &oe) || oe.Option != "WithNamespace" {
		t.Fatalf("bad namespace: %v", err)
	}
	at, err := Attach(n, newMapCache())
	if err != nil {
		t.Fatal(err)
	}
	if err := at.Invalidate(""); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	if err := at.InvalidatePrefix(""); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty prefix without namespace: %v", err)
	}
	ns, err := Attach(n, newMapCache(), WithNamespace("ns"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.InvalidatePrefix(""); err != nil {
		t.Fatalf("empty prefix in a namespace: %v", err)
	}
}

// Applying a remote exact invalidation through an Attachment allocates
// nothing of its own (the cache's Invalidate may).
func TestAttachApplyDoesNotAllocate(t *testing.T) {
	n := newLocal[int](t).Node()
	c := &countingCache{}
	at, err := Attach(n, c, WithNamespace("ns"))
	if err != nil {
		t.Fatal(err)
	}
	inv := engine.Invalidation{Key: []byte("ns:k"), Origin: n.ID() + 1}
	allocs := testing.AllocsPerRun(1000, func() { at.onInvalidate(inv) })
	if allocs != 0 {
		t.Fatalf("apply allocates %.1f times", allocs)
	}
	if c.n < 1000 || c.last != "k" {
		t.Fatalf("Invalidate called %d times, last key %q", c.n, c.last)
	}
}

type countingCache struct {
	n    int
	last string
}

func (c *countingCache) Invalidate(key []byte) {
	c.n++
	if string(key) != c.last { // compared without allocating; copied once
		c.last = string(key)
	}
}
func (c *countingCache) InvalidateAll() {}

// A cache attached before its node is ready is flushed when it becomes
// ready: what it stored meanwhile may predate invalidations the node was
// never sent.
func TestAttachFlushesWhenReady(t *testing.T) {
	p := freePorts(t, 2)
	a, err := engine.New(loopback(p[0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := engine.New(loopback(p[1], p[0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c := newMapCache()
	at, err := Attach(b, c)
	if err != nil {
		t.Fatal(err)
	}
	if b.Ready() {
		t.Skip("the node became ready before the cache was attached: nothing to flush")
	}
	c.set("early", 1) // stored before ready
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := at.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	waitFor(t, 5*time.Second, "the flush on EventReady", func() bool { return at.Stats().Flushes == 1 })
	if c.has("early") {
		t.Fatal("a value stored before ready survived the node becoming ready")
	}
	c.set("late", 2) // stored once ready: stays
	if err := a.Invalidate("other"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to apply an invalidation", func() bool { return at.Stats().RemoteInvalidations == 1 })
	if !c.has("late") || at.Stats().Flushes != 1 {
		t.Fatalf("after ready: late kept %v, flushes %d", c.has("late"), at.Stats().Flushes)
	}
}

// EventReady flushes once, and only a cache attached while the node was
// not ready: the event can reach a handler subscribed after the node
// became ready, and must not flush a cache filled since.
func TestAttachReadyEventFlushesOnce(t *testing.T) {
	n := newLocal[int](t).Node()
	c := newMapCache("x")
	at, err := Attach(n, c)
	if err != nil {
		t.Fatal(err)
	}
	at.flushOnReady.Store(true) // as if attached before ready
	at.onEvent(engine.Event{Type: engine.EventReady})
	if c.len() != 0 || at.Stats().Flushes != 1 {
		t.Fatalf("EventReady: %d entries left, %d flushes", c.len(), at.Stats().Flushes)
	}
	c.set("y", 1)
	at.onEvent(engine.Event{Type: engine.EventReady})
	if !c.has("y") || at.Stats().Flushes != 1 {
		t.Fatal("a second EventReady flushed again")
	}

	waitFor(t, 5*time.Second, "the node to be ready", n.Ready)
	late := newMapCache("z")
	lat, err := Attach(n, late) // attached once ready: owes nothing
	if err != nil {
		t.Fatal(err)
	}
	lat.onEvent(engine.Event{Type: engine.EventReady}) // a late delivery of the one event
	if !late.has("z") || lat.Stats().Flushes != 0 {
		t.Fatal("a cache attached to a ready node was flushed by EventReady")
	}
}

// TestAttachTrusted: an attachment vouches for its cache (Trusted) only
// while the node is ready, no Gap is pending that it has not flushed for,
// and no member is silent: false from a Gap until its flush, true again
// after it; false once a killed member has been silent for SuspectAfter,
// true again once the mesh gives it up.
func TestAttachTrusted(t *testing.T) {
	a, b := twoNodes(t, func(o *engine.Options) { o.RepairTimeout = 200 * time.Millisecond })
	// A handler subscribed before the attachment's holds the Gap event
	// up, as a slow handler or an event goroutine without a CPU would.
	seen, release := holdGaps(t, b)
	c := newMapCache("k")
	at, err := Attach(b, c)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	waitFor(t, 5*time.Second, "the attachment to be trusted", at.Trusted)
	before := at.Stats().Flushes // the flush on becoming ready, if b was not at Attach

	if err := a.DeclareLoss(); err != nil { // b raises a Gap for a's skipped sequence
		t.Fatal(err)
	}
	<-seen
	if at.Trusted() {
		t.Fatal("trusted while a Gap was raised and not flushed for")
	}
	release()
	waitFor(t, 5*time.Second, "trusted again after the Gap's flush", at.Trusted)
	if n := at.Stats().Flushes - before; n != 1 || c.len() != 0 {
		t.Fatalf("%d flushes (%d entries left) after one Gap, want 1 flush and none", n, c.len())
	}

	if err := a.Abort(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "distrust once a is silent", func() bool { return !at.Trusted() })
	waitFor(t, 5*time.Second, "trust once a is given up", at.Trusted)
	if m := b.Members(); len(m) != 1 || m[0].State != engine.StateDead {
		t.Fatalf("trusted again while a was %+v; want it dead first", m)
	}
}
