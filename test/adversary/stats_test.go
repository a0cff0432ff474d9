package adversary

import "github.com/warpmesh/warpmesh/engine"

// unvalidated is the member entries not yet validated.
func unvalidated(s engine.Stats) int { return s.MembersUnvalidated }

// memberCap is the bound asserted on a flooded member table: the engine's
// documented caps of both pools.
const memberCap = engine.MaxMembers + engine.MaxUnvalidatedMembers
