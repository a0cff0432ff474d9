package coherence

import "github.com/warpmesh/warpmesh/presets"

// addPassThrough adds the loads a cache passed straight through to the
// loader without storing them (while its node was not ready). presets on
// this branch has no such counter yet, so there is nothing to add.
func addPassThrough(dst, src *presets.Stats) {}

// passThroughString describes the pass-through loads for a report.
func passThroughString(s *presets.Stats) string { return "" }
