package presets

import (
	"context"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// call is one load in flight. The shard's inflight map points at it while
// its result may still be stored; an invalidation of its key, a flush, or
// every waiter giving up detaches it, and a detached call's result goes to
// its waiters only.
type call[T any] struct {
	key     string
	done    chan struct{} // closed when val and err are set
	val     T
	err     error
	waiters int // guarded by the shard's mu
	cancel  context.CancelFunc
}

// GetOrLoad returns key's value, calling load to produce it on a miss and
// storing it with the default TTL. Concurrent calls for one key share one
// load (coalescing): one caller's load runs, the others wait for it. A
// caller whose ctx is done stops waiting and gets ctx.Err(); the load goes
// on for the others, and its context is canceled once every caller has
// gone or the cache closes. The loader's context carries the values of the
// ctx of the caller that started it, not its cancellation.
//
// If key is invalidated while the load runs (a local Set, Delete or
// DeletePrefix, an invalidation from another member, or a flush), the
// loaded value is returned to the callers waiting for it but not stored,
// and later callers start a new load. A loader error is returned to every
// waiter and nothing is stored; a loader panic becomes an error wrapping
// ErrLoaderPanic.
func (c *Cache[T]) GetOrLoad(ctx context.Context, key string, load func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if load == nil {
		return zero, ErrNilLoader
	}
	if err := c.checkKey(key); err != nil {
		return zero, err
	}
	if v, ok := c.Get(key); ok {
		return v, nil
	}
	if c.closed.Load() {
		return zero, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if !c.node.Ready() {
		// Not coherent with the mesh yet: what we load now may be made
		// stale by an invalidation we were never sent, so it is not
		// stored (nor coalesced with a load that will be).
		c.notReadyLoads.Add(1)
		c.loads.Add(1)
		v, err := callLoader(ctx, load)
		if err != nil {
			c.loadErrors.Add(1)
		}
		return v, err
	}
	gap := c.node.GapPending(c.gapsFlushed.Load())
	if gap || (c.heedSilence && c.node.Silent()) {
		// A flush is on its way, or a member has not been heard for
		// SuspectAfter: what is held (or loaded by a call in flight) may
		// be stale. Load, and leave storing to after it.
		if gap {
			c.gapLoads.Add(1)
		} else {
			c.silentLoads.Add(1)
		}
		c.loads.Add(1)
		v, err := callLoader(ctx, load)
		if err != nil {
			c.loadErrors.Add(1)
		}
		return v, err
	}
	s := c.shardOf(xxhash.Sum64String(key))
	s.mu.Lock()
	if v, ok, _ := s.lookup(key, c.nowFn); ok { // stored since our miss
		s.mu.Unlock()
		return v, nil
	}
	cl := s.inflight[key]
	if cl != nil {
		cl.waiters++
		c.coalesced.Add(1)
	} else {
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cl = &call[T]{key: key, done: make(chan struct{}), waiters: 1, cancel: cancel}
		s.inflight[key] = cl
		c.loads.Add(1)
		go c.run(lctx, s, cl, load)
	}
	s.mu.Unlock()

	select {
	case <-cl.done:
		return cl.val, cl.err
	case <-ctx.Done():
	}
	select {
	case <-cl.done: // finished as we gave up: take the result
		return cl.val, cl.err
	default:
	}
	s.mu.Lock()
	if cl.waiters--; cl.waiters == 0 {
		cl.cancel()
		if s.inflight[key] == cl {
			delete(s.inflight, key)
		}
	}
	s.mu.Unlock()
	return zero, ctx.Err()
}

// run calls the loader and stores its value if the call is still attached.
func (c *Cache[T]) run(ctx context.Context, s *shard[T], cl *call[T], load func(context.Context) (T, error)) {
	cl.val, cl.err = callLoader(ctx, load)
	if cl.err != nil {
		c.loadErrors.Add(1)
	}
	s.mu.Lock()
	switch {
	case s.inflight[cl.key] != cl:
		if cl.err == nil {
			c.staleLoads.Add(1)
		}
	default:
		delete(s.inflight, cl.key)
		if cl.err == nil && !c.closed.Load() {
			var expires int64
			if c.ttl > 0 {
				expires = c.now() + int64(c.ttl)
			}
			s.store(cl.key, cl.val, expires, c.nowFn)
		}
	}
	s.mu.Unlock()
	cl.cancel()
	close(cl.done)
}

func callLoader[T any](ctx context.Context, load func(context.Context) (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrLoaderPanic, r)
		}
	}()
	return load(ctx)
}
