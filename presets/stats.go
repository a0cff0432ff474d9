package presets

// Stats is a snapshot of a cache's counters. Counters only grow.
type Stats struct {
	Hits   uint64 // Get (and GetOrLoad) calls answered from the cache
	Misses uint64 // Get calls that found nothing, or an expired entry

	Loads      uint64 // loader calls started by GetOrLoad
	Coalesced  uint64 // GetOrLoad calls that waited for another's load
	LoadErrors uint64 // loader calls that returned an error or panicked
	StaleLoads uint64 // loaded values not stored: their key was invalidated (or every caller gave up) meanwhile

	Sets    uint64 // local Set and SetWithTTL calls
	Deletes uint64 // local Delete calls

	RemoteInvalidations uint64 // invalidations from other members applied (exact and prefix)
	PrefixInvalidations uint64 // prefix invalidations applied, local and remote
	Flushes             uint64 // whole-cache flushes on engine.EventGap

	// NotReadyLoads counts GetOrLoad loads passed straight through (not
	// stored) because the node was not yet ready; NotReadySets, Set calls
	// that only invalidated. See engine.Node.Ready.
	NotReadyLoads, NotReadySets uint64

	// GapLoads counts GetOrLoad loads passed straight through (not
	// stored), and GapMisses cached entries not served, because a Gap was
	// pending: raised but not flushed for yet, or overdue (see
	// engine.Node.GapPending). On a machine that gives the node's timer
	// and event goroutines a CPU, both stay near 0.
	GapLoads, GapMisses uint64

	// SilentLoads counts GetOrLoad loads passed straight through, and
	// SilentMisses cached entries not served, because a member had not
	// been heard for SuspectAfter (engine.Node.Silent): it may have
	// published invalidations the node has not heard of. They follow a
	// member's crash (for about DeadAfter + RepairTimeout − SuspectAfter),
	// a partition, and stalls of this process or another member's.
	SilentLoads, SilentMisses uint64

	Evictions   uint64 // entries dropped by the W-TinyLFU policy to make room (the new entry itself, when it loses admission)
	Expirations uint64 // expired entries reclaimed

	Entries int // entries held now (as Len)
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache[T]) Stats() Stats {
	st := Stats{
		Loads:               c.loads.Load(),
		Coalesced:           c.coalesced.Load(),
		LoadErrors:          c.loadErrors.Load(),
		StaleLoads:          c.staleLoads.Load(),
		Sets:                c.sets.Load(),
		Deletes:             c.deletes.Load(),
		RemoteInvalidations: c.remote.Load(),
		PrefixInvalidations: c.prefixes.Load(),
		Flushes:             c.flushes.Load(),
		NotReadyLoads:       c.notReadyLoads.Load(),
		NotReadySets:        c.notReadySets.Load(),
		GapLoads:            c.gapLoads.Load(),
		GapMisses:           c.gapMisses.Load(),
		SilentLoads:         c.silentLoads.Load(),
		SilentMisses:        c.silentMisses.Load(),
	}
	for i := range c.shards {
		s := &c.shards[i]
		hits, misses := s.mu.counts()
		st.Hits += hits
		st.Misses += misses
		st.Evictions += s.evictions.Load()
		st.Expirations += s.expirations.Load()
	}
	st.Entries = c.Len()
	return st
}
