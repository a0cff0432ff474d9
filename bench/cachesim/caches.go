package cachesim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/Yiling-J/theine-go"
	"github.com/dgraph-io/ristretto/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/presets"
)

// Cache is what the simulation and the benchmarks need of a cache.
type Cache interface {
	Get(key string) (int, bool)
	Set(key string, v int)
	// Len returns the entries held now, or -1 if the cache cannot tell
	// cheaply.
	Len() int
	Close()
}

// A Maker builds a cache of a capacity (entries).
type Maker struct {
	Name string
	New  func(capacity int) (Cache, error)
}

// Makers lists the caches compared, presets first.
var Makers = []Maker{
	{"presets", NewPresets},
	{"otter", NewOtter},
	{"theine", NewTheine},
	{"ristretto", NewRistretto},
	{"golang-lru", NewLRU},
}

// presetsCache is a presets.Cache on a node of its own with no peers on
// 127.0.0.1: a Set publishes an invalidation that goes nowhere.
type presetsCache struct{ c *presets.Cache[int] }

// NewPresets returns a presets.Cache holding capacity entries.
func NewPresets(capacity int) (Cache, error) {
	c, err := presets.NewMeshEventual[int](engine.Options{
		Port:        engine.AnyPort,
		BindAddr:    "127.0.0.1",
		UnicastOnly: true,
		Cluster:     "cachesim",
		Heartbeat:   100 * time.Millisecond, // alone, ready after one heartbeat
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		PublishRing: 1 << 16,
	}, presets.WithMaxEntries(capacity))
	if err != nil {
		return nil, err
	}
	// A node stores nothing until it is ready: alone, after a discovery
	// grace of one heartbeat.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("presets: %w", err)
	}
	return presetsCache{c}, nil
}

func (p presetsCache) Get(k string) (int, bool) { return p.c.Get(k) }
func (p presetsCache) Set(k string, v int)      { p.c.Set(k, v) }
func (p presetsCache) Close()                   { p.c.Close() }
func (p presetsCache) Len() int                 { return p.c.Len() }

type otterCache struct{ c *otter.Cache[string, int] }

// NewOtter returns an otter v2 cache bounded to capacity entries.
func NewOtter(capacity int) (Cache, error) {
	c, err := otter.New(&otter.Options[string, int]{MaximumSize: capacity})
	if err != nil {
		return nil, err
	}
	return otterCache{c}, nil
}

func (o otterCache) Get(k string) (int, bool) { return o.c.GetIfPresent(k) }
func (o otterCache) Set(k string, v int)      { o.c.Set(k, v) }
func (o otterCache) Close()                   { o.c.InvalidateAll() }
func (o otterCache) Len() int                 { return o.c.EstimatedSize() }

type theineCache struct{ c *theine.Cache[string, int] }

// NewTheine returns a theine cache bounded to capacity entries.
func NewTheine(capacity int) (Cache, error) {
	c, err := theine.NewBuilder[string, int](int64(capacity)).Build()
	if err != nil {
		return nil, err
	}
	return theineCache{c}, nil
}

func (t theineCache) Get(k string) (int, bool) { return t.c.Get(k) }
func (t theineCache) Set(k string, v int)      { t.c.Set(k, v, 1) }
func (t theineCache) Close()                   { t.c.Close() }
func (t theineCache) Len() int                 { return t.c.Len() }

type ristrettoCache struct{ c *ristretto.Cache[string, int] }

// NewRistretto returns a ristretto cache of capacity entries (cost 1
// each), with the 10 counters per entry its documentation advises.
func NewRistretto(capacity int) (Cache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, int]{
		NumCounters: int64(10 * capacity),
		MaxCost:     int64(capacity),
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return ristrettoCache{c}, nil
}

func (r ristrettoCache) Get(k string) (int, bool) { return r.c.Get(k) }
func (r ristrettoCache) Set(k string, v int)      { r.c.Set(k, v, 1) }
func (r ristrettoCache) Close()                   { r.c.Close() }
func (r ristrettoCache) Len() int                 { return -1 } // its metrics are off: they slow it

// Wait blocks until ristretto has applied the Sets buffered so far.
func (r ristrettoCache) Wait() { r.c.Wait() }

type lruCache struct{ c *lru.Cache[string, int] }

// NewLRU returns a golang-lru/v2 cache of capacity entries.
func NewLRU(capacity int) (Cache, error) {
	c, err := lru.New[string, int](capacity)
	if err != nil {
		return nil, fmt.Errorf("golang-lru: %w", err)
	}
	return lruCache{c}, nil
}

func (l lruCache) Get(k string) (int, bool) { return l.c.Get(k) }
func (l lruCache) Set(k string, v int)      { l.c.Add(k, v) }
func (l lruCache) Close()                   { l.c.Purge() }
func (l lruCache) Len() int                 { return l.c.Len() }
