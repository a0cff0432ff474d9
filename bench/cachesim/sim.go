package cachesim

// HitRatio replays t against c as a cache in front of a database would
// see it: each request is a Get, and a miss stores the key (Set). It
// returns hits / requests, cold misses included.
func HitRatio(c Cache, t Trace, keys []string) float64 {
	hits := 0
	for _, id := range t.IDs {
		k := keys[id]
		if _, ok := c.Get(k); ok {
			hits++
			continue
		}
		c.Set(k, int(id))
	}
	return float64(hits) / float64(len(t.IDs))
}
