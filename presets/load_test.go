package presets

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// blockingLoader is a loader that announces it started and returns value
// only when released.
type blockingLoader struct {
	started chan struct{}
	release chan struct{}
	calls   atomic.Int32
	value   int
}

func newBlockingLoader(value int) *blockingLoader {
	return &blockingLoader{started: make(chan struct{}, 1), release: make(chan struct{}), value: value}
}

func (l *blockingLoader) load(ctx context.Context) (int, error) {
	l.calls.Add(1)
	select {
	case l.started <- struct{}{}:
	default:
	}
	<-l.release
	return l.value, nil
}

func TestGetOrLoadStoresAndHits(t *testing.T) {
	c := newLocal[int](t)
	ctx := context.Background()
	v, err := c.GetOrLoad(ctx, "k", func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("GetOrLoad = %d, %v", v, err)
	}
	v, err = c.GetOrLoad(ctx, "k", func(context.Context) (int, error) { t.Fatal("loader called on a hit"); return 0, nil })
	if err != nil || v != 7 {
		t.Fatalf("second GetOrLoad = %d, %v", v, err)
	}
	if st := c.Stats(); st.Loads != 1 || st.Hits != 1 {
		t.Fatalf("Loads %d Hits %d; want 1, 1", st.Loads, st.Hits)
	}
}

func TestGetOrLoadCoalesces(t *testing.T) {
	c := newLocal[int](t)
	l := newBlockingLoader(42)
	const callers = 100
	var wg sync.WaitGroup
	results := make([]int, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.GetOrLoad(context.Background(), "k", l.load)
		}()
	}
	<-l.started
	waitFor(t, 5*time.Second, "every caller to join the load", func() bool {
		return c.Stats().Coalesced == callers-1
	})
	close(l.release)
	wg.Wait()
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("loader ran %d times, want 1", n)
	}
	for i := range callers {
		if errs[i] != nil || results[i] != 42 {
			t.Fatalf("caller %d got %d, %v", i, results[i], errs[i])
		}
	}
	if v, ok := c.Get("k"); !ok || v != 42 {
		t.Fatal("loaded value not stored")
	}
}

func TestGetOrLoadCancelReleasesWaiter(t *testing.T) {
	c := newLocal[int](t)
	l := newBlockingLoader(5)
	leader := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(context.Background(), "k", l.load)
		leader <- err
	}()
	<-l.started

	ctx, cancel := context.WithCancel(context.Background())
	waiter := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(ctx, "k", l.load)
		waiter <- err
	}()
	waitFor(t, 5*time.Second, "the waiter to join", func() bool { return c.Stats().Coalesced == 1 })
	cancel()
	if err := <-waiter; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter got %v", err)
	}
	close(l.release) // the leader, still waiting, gets the value and it is stored
	if err := <-leader; err != nil {
		t.Fatalf("leader: %v", err)
	}
	if v, ok := c.Get("k"); !ok || v != 5 {
		t.Fatal("value not stored after one waiter gave up")
	}
}

func TestGetOrLoadAllGoneCancelsLoad(t *testing.T) {
	c := newLocal[int](t)
	loadCtx := make(chan context.Context, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(ctx, "k", func(lctx context.Context) (int, error) {
			loadCtx <- lctx
			<-lctx.Done()
			return 1, lctx.Err()
		})
		done <- err
	}()
	lctx := <-loadCtx
	if lctx.Err() != nil {
		t.Fatal("load context canceled before anyone left")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller got %v", err)
	}
	select {
	case <-lctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("load context not canceled after every caller left")
	}
}

func TestGetOrLoadErrorsAndPanics(t *testing.T) {
	c := newLocal[int](t)
	boom := errors.New("boom")
	if _, err := c.GetOrLoad(context.Background(), "e", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("loader error: %v", err)
	}
	if _, err := c.GetOrLoad(context.Background(), "p", func(context.Context) (int, error) { panic("oops") }); !errors.Is(err, ErrLoaderPanic) {
		t.Fatalf("loader panic: %v", err)
	}
	if c.Len() != 0 || c.Stats().LoadErrors != 2 {
		t.Fatalf("Len %d LoadErrors %d; want 0, 2", c.Len(), c.Stats().LoadErrors)
	}
	if _, err := c.GetOrLoad(context.Background(), "k", nil); !errors.Is(err, ErrNilLoader) {
		t.Fatalf("nil loader: %v", err)
	}
	if _, err := c.GetOrLoad(context.Background(), "", func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetOrLoad(ctx, "k", func(context.Context) (int, error) { t.Error("loader ran for a dead context"); return 0, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}

// TestLoadInvalidateRace: a load that started before an invalidation of its
// key returns its value but does not store it, for every kind of
// invalidation; a load of another key is unaffected.
func TestLoadInvalidateRace(t *testing.T) {
	cases := []struct {
		name       string
		invalidate func(c *Cache[int])
		keepsValue bool // Set leaves its own value in place
	}{
		{"local Set", func(c *Cache[int]) { c.Set("user:1", 99) }, true},
		{"local Delete", func(c *Cache[int]) { c.Delete("user:1") }, false},
		{"local DeletePrefix", func(c *Cache[int]) { c.DeletePrefix("user:") }, false},
		{"remote exact", func(c *Cache[int]) {
			c.onInvalidate(engine.Invalidation{Key: []byte("user:1"), Origin: c.nodeID + 1})
		}, false},
		{"remote prefix", func(c *Cache[int]) {
			c.onInvalidate(engine.Invalidation{Key: []byte("us"), Prefix: true, Origin: c.nodeID + 1})
		}, false},
		{"gap flush", func(c *Cache[int]) { c.onEvent(engine.Event{Type: engine.EventGap}) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newLocal[int](t)
			l := newBlockingLoader(1)
			got := make(chan int, 1)
			go func() {
				v, err := c.GetOrLoad(context.Background(), "user:1", l.load)
				if err != nil {
					t.Error(err)
				}
				got <- v
			}()
			<-l.started
			tc.invalidate(c)
			close(l.release)
			if v := <-got; v != 1 {
				t.Fatalf("caller got %d, want the loaded 1", v)
			}
			v, ok := c.Get("user:1")
			switch {
			case tc.keepsValue && (!ok || v != 99):
				t.Fatalf("after Set during load: Get = %d, %v; want 99 (Set's value)", v, ok)
			case !tc.keepsValue && ok:
				t.Fatalf("stale load stored: Get = %d", v)
			}
			if st := c.Stats(); st.StaleLoads != 1 {
				t.Fatalf("StaleLoads = %d, want 1", st.StaleLoads)
			}
			// The next GetOrLoad starts a fresh load (it does not join the stale one).
			if !tc.keepsValue {
				v, err := c.GetOrLoad(context.Background(), "user:1", func(context.Context) (int, error) { return 2, nil })
				if err != nil || v != 2 {
					t.Fatalf("reload = %d, %v", v, err)
				}
			}
		})
	}

	t.Run("other key", func(t *testing.T) {
		c := newLocal[int](t)
		l := newBlockingLoader(1)
		done := make(chan struct{})
		go func() { c.GetOrLoad(context.Background(), "user:1", l.load); close(done) }()
		<-l.started
		c.Delete("user:2")
		c.onInvalidate(engine.Invalidation{Key: []byte("order:"), Prefix: true, Origin: c.nodeID + 1})
		close(l.release)
		<-done
		if v, ok := c.Get("user:1"); !ok || v != 1 {
			t.Fatal("load not stored after invalidations of other keys")
		}
	})

	t.Run("invalidation detaches the load", func(t *testing.T) {
		// A caller arriving after the invalidation must not join the old load.
		c := newLocal[int](t)
		old := newBlockingLoader(1)
		go c.GetOrLoad(context.Background(), "k", old.load)
		<-old.started
		c.Delete("k")
		v, err := c.GetOrLoad(context.Background(), "k", func(context.Context) (int, error) { return 2, nil })
		if err != nil || v != 2 {
			t.Fatalf("GetOrLoad after invalidation = %d, %v; want a fresh 2", v, err)
		}
		close(old.release)
		waitFor(t, 5*time.Second, "the old load to finish", func() bool { return c.Stats().StaleLoads == 1 })
		if v, _ := c.Get("k"); v != 2 {
			t.Fatalf("old load overwrote the fresh value: %d", v)
		}
	})
}

func TestGapFlushes(t *testing.T) {
	c := newLocal[int](t)
	for i := range 100 {
		c.Set(string(rune('a'+i%26))+string(rune('a'+i/26)), i)
	}
	c.onEvent(engine.Event{Type: engine.EventJoin})
	if c.Len() != 100 || c.Stats().Flushes != 0 {
		t.Fatal("a join event flushed the cache")
	}
	c.onEvent(engine.Event{Type: engine.EventGap, Gap: engine.Gap{Origin: 1, Missing: 3, Reason: engine.GapEvicted}})
	if c.Len() != 0 {
		t.Fatalf("Len after Gap = %d", c.Len())
	}
	if st := c.Stats(); st.Flushes != 1 {
		t.Fatalf("Flushes = %d, want 1", st.Flushes)
	}
	if err := c.Set("after", 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("after"); !ok {
		t.Fatal("cache unusable after a flush")
	}
}
