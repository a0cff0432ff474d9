package coherence

import (
	"fmt"

	"github.com/warpmesh/warpmesh/presets"
)

// addPassThrough adds the loads (and Sets) a cache passed straight through
// without storing them while its node was not ready or a Gap was pending.
func addPassThrough(dst, src *presets.Stats) {
	dst.NotReadyLoads += src.NotReadyLoads
	dst.NotReadySets += src.NotReadySets
	dst.GapLoads += src.GapLoads
	dst.GapMisses += src.GapMisses
}

// passThroughString describes the pass-through loads for a report.
func passThroughString(s *presets.Stats) string {
	return fmt.Sprintf(", passed through while not ready: %d loads, %d sets; while a Gap was pending: %d loads, %d entries not served", s.NotReadyLoads, s.NotReadySets, s.GapLoads, s.GapMisses)
}
