package coherence

import (
	"fmt"

	"github.com/warpmesh/warpmesh/presets"
)

// addPassThrough adds the loads (and Sets) a cache passed straight through
// without storing them while its node was not ready.
func addPassThrough(dst, src *presets.Stats) {
	dst.NotReadyLoads += src.NotReadyLoads
	dst.NotReadySets += src.NotReadySets
}

// passThroughString describes the pass-through loads for a report.
func passThroughString(s *presets.Stats) string {
	return fmt.Sprintf(", passed through while not ready: %d loads, %d sets", s.NotReadyLoads, s.NotReadySets)
}
