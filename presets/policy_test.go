package presets

import (
	"fmt"
	"testing"
	"time"
)

func TestSketchCountsAndAges(t *testing.T) {
	var s sketch
	s.init(1024)
	for i := range 20 {
		s.add(7, 1)
		if got, want := s.estimate(7), min(i+1, sketchMax); got < want {
			t.Fatalf("after %d adds estimate = %d, want ≥ %d", i+1, got, want)
		}
	}
	if got := s.estimate(7); got != sketchMax {
		t.Fatalf("estimate = %d, want the ceiling %d", got, sketchMax)
	}
	s.add(9, 3)
	if got := s.estimate(9); got < 3 {
		t.Fatalf("add(9, 3): estimate %d", got)
	}
	unseen := 0
	for h := uint32(1000); h < 2000; h++ {
		unseen += s.estimate(h)
	}
	if unseen > 20 { // two keys in 16k counters: almost every unseen key reads 0
		t.Fatalf("unseen keys sum to %d: the sketch is not spreading keys", unseen)
	}
	s.age()
	if got := s.estimate(7); got != sketchMax/2 {
		t.Fatalf("after aging estimate = %d, want %d", got, sketchMax/2)
	}
	// The sample triggers aging by itself.
	for h := uint32(0); s.additions < s.sampleSize-1; h++ {
		s.add(h+100_000, 1)
	}
	before := s.estimate(7)
	s.add(5_000_000, 1)
	if got := s.estimate(7); got != before/2 {
		t.Fatalf("a full sample did not age: %d → %d", before, got)
	}
}

func TestSketchAddDoesNotAllocate(t *testing.T) {
	var s sketch
	s.init(100)
	h := uint32(0)
	allocs := testing.AllocsPerRun(1000, func() { s.add(h, 1); h++; s.estimate(h) })
	if allocs != 0 {
		t.Fatalf("sketch add allocates %.1f times", allocs)
	}
}

// hitRatio replays ids against c, storing on a miss, and returns the hit
// ratio over the requests after the first skip.
func hitRatio(c *Cache[int], keys []string, ids []int, skip int) float64 {
	hits := 0
	for n, id := range ids {
		if _, ok := c.Get(keys[id]); ok {
			if n >= skip {
				hits++
			}
			continue
		}
		c.Set(keys[id], id)
	}
	return float64(hits) / float64(len(ids)-skip)
}

// A loop over more keys than the cache holds: LRU and CLOCK hit nothing;
// frequency admission keeps most of the loop.
func TestLoopResistance(t *testing.T) {
	const capacity, loop = 2000, 2400
	c := newLocal[int](t, WithMaxEntries(capacity))
	keys := benchKeys(loop)
	var ids []int
	for range 20 {
		for i := range loop {
			ids = append(ids, i)
		}
	}
	got := hitRatio(c, keys, ids, 5*loop)
	t.Logf("loop of %d over %d entries: hit ratio %.3f", loop, capacity, got)
	if got < 0.6 { // best possible is capacity/loop = 0.83
		t.Fatalf("hit ratio %.3f on a loop, want ≥ 0.6", got)
	}
	if c.Len() > capacity {
		t.Fatalf("Len %d > %d", c.Len(), capacity)
	}
}

// A scan of ten times the capacity in new keys must not push out a hot set
// that is used often.
func TestScanResistance(t *testing.T) {
	const capacity, hot = 1000, 200
	c := newLocal[int](t, WithMaxEntries(capacity))
	keys := benchKeys(hot + 10*capacity)
	for range 10 {
		for i := range hot {
			if _, ok := c.Get(keys[i]); !ok {
				c.Set(keys[i], i)
			}
		}
	}
	for i := hot; i < len(keys); i++ { // the scan, each key once
		if _, ok := c.Get(keys[i]); !ok {
			c.Set(keys[i], i)
		}
	}
	kept := 0
	for i := range hot {
		if _, ok := c.Get(keys[i]); ok {
			kept++
		}
	}
	if kept < hot*9/10 {
		t.Fatalf("a scan evicted %d of %d hot keys", hot-kept, hot)
	}
	if st := c.Stats(); st.Evictions < uint64(10*capacity-capacity) {
		t.Fatalf("only %d evictions: the scan was not stored and evicted", st.Evictions)
	}
}

// Entries with a TTL that have expired are reclaimed by the policy before
// anything live is evicted.
func TestEvictionReclaimsExpiredFirst(t *testing.T) {
	clk := newFakeClock()
	c := newLocal[int](t, WithMaxEntries(1), WithClock(clk))
	c.SetWithTTL("old", 1, time.Second)
	clk.Advance(2 * time.Second)
	c.Set("new", 2)
	st := c.Stats()
	if st.Expirations != 1 || st.Evictions != 0 {
		t.Fatalf("Expirations %d, Evictions %d; want 1, 0", st.Expirations, st.Evictions)
	}
	if v, ok := c.Get("new"); !ok || v != 2 {
		t.Fatal("new entry not stored")
	}
}

// The queues stay consistent with the index through every kind of
// removal.
func TestQueuesMatchIndex(t *testing.T) {
	c := newLocal[int](t, WithMaxEntries(3)) // one shard of three: every path runs
	c2 := newLocal[int](t, WithMaxEntries(300))
	for _, c := range []*Cache[int]{c, c2} {
		for i := range 2000 {
			k := fmt.Sprint("k", i%700)
			switch i % 7 {
			case 3:
				c.Delete(k)
			case 5:
				c.Get(fmt.Sprint("k", (i*13)%700))
			default:
				c.Set(k, i)
			}
			if i%500 == 499 {
				c.DeletePrefix("k1")
			}
		}
		for i := range c.shards {
			s := &c.shards[i]
			n := 0
			for _, q := range []*queue{&s.window, &s.probation, &s.protected} {
				seen := 0
				prev := int32(-1)
				for j := q.head; j >= 0; j = s.slots[j].next {
					if s.slots[j].prev != prev {
						t.Fatalf("shard %d: broken prev link at %d", i, j)
					}
					prev = j
					seen++
				}
				if seen != q.n || q.tail != prev {
					t.Fatalf("shard %d: queue holds %d, counts %d", i, seen, q.n)
				}
				n += seen
			}
			if n != len(s.index) || n > s.limit {
				t.Fatalf("shard %d: queues hold %d, index %d, limit %d", i, n, len(s.index), s.limit)
			}
			if s.window.n > s.windowMax {
				t.Fatalf("shard %d: window %d over %d", i, s.window.n, s.windowMax)
			}
		}
	}
}

// Get (a hit, counted) and Set (a new key stored into a full cache, with
// an eviction) allocate nothing.
func TestHotPathsDoNotAllocate(t *testing.T) {
	const capacity = 1000
	c := newLocal[int](t, WithMaxEntries(capacity))
	keys := benchKeys(4 * capacity)
	for i, k := range keys {
		c.Set(k, i)
	}
	c.Set("hit", 1)
	before := c.Stats()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := c.Get("hit"); !ok {
			t.Fatal("miss on the hit path")
		}
	})
	if allocs != 0 {
		t.Errorf("Get hit allocates %.1f times", allocs)
	}
	if st := c.Stats(); st.Hits-before.Hits < 1000 {
		t.Fatalf("hits grew by %d, want ≥ 1000", st.Hits-before.Hits)
	}

	i := 0
	before = c.Stats()
	allocs = testing.AllocsPerRun(1000, func() {
		k := keys[i%len(keys)]
		i++
		if err := c.Set(k, i); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Set allocates %.1f times", allocs)
	}
	st := c.Stats()
	if st.Sets-before.Sets < 1000 || st.Evictions == before.Evictions {
		t.Fatalf("Sets +%d, Evictions +%d: the store-and-evict path did not run", st.Sets-before.Sets, st.Evictions-before.Evictions)
	}
	if v, ok := c.Get(keys[(i-1)%len(keys)]); !ok || v != i {
		t.Fatalf("last Set not stored: %d, %v", v, ok)
	}
}
