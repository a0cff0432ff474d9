package coherence

import (
	"fmt"

	"github.com/warpmesh/warpmesh/presets"
)

// addPassThrough adds the loads (and Sets) a cache passed straight through
// without storing them while its node was not ready, a Gap was pending or
// a member was silent.
func addPassThrough(dst, src *presets.Stats) {
	dst.NotReadyLoads += src.NotReadyLoads
	dst.NotReadySets += src.NotReadySets
	dst.GapLoads += src.GapLoads
	dst.GapMisses += src.GapMisses
	dst.SilentLoads += src.SilentLoads
	dst.SilentMisses += src.SilentMisses
}

// passThroughString describes the pass-through loads for a report.
func passThroughString(s *presets.Stats) string {
	return fmt.Sprintf(", passed through while not ready: %d loads, %d sets; while a Gap was pending: %d loads, %d entries not served; while a member was silent: %d loads, %d entries not served", s.NotReadyLoads, s.NotReadySets, s.GapLoads, s.GapMisses, s.SilentLoads, s.SilentMisses)
}
