package adversary

import "github.com/warpmesh/warpmesh/engine"

// unvalidated is the member entries not yet validated.
func unvalidated(engine.Stats) int { return 0 }

// memberCap is the bound asserted on a flooded member table.
const memberCap = 8192
