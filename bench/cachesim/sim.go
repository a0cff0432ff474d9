package cachesim

// Result is how a cache did on a trace.
type Result struct {
	HitRatio float64 // hits / requests, cold misses included
	MaxLen   int     // most entries seen held (sampled after Sets), -1 if unknown
}

// Run replays t against c as a cache in front of a database would see
// it: each request is a Get, and a miss stores the key (Set). The cache's
// size is sampled every 64 Sets: a cache whose eviction runs behind its
// writes holds more than its capacity for a while, and hits more for it.
func Run(c Cache, t Trace, keys []string) Result {
	hits, sets := 0, 0
	maxLen := c.Len()
	for _, id := range t.IDs {
		k := keys[id]
		if _, ok := c.Get(k); ok {
			hits++
			continue
		}
		c.Set(k, int(id))
		if sets++; sets%64 == 0 && maxLen >= 0 {
			maxLen = max(maxLen, c.Len())
		}
	}
	return Result{HitRatio: float64(hits) / float64(len(t.IDs)), MaxLen: maxLen}
}
