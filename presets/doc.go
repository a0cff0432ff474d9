// Package presets is what an application embeds: a typed, sharded, bounded
// in-memory cache (Cache) wired to an engine.Node so that a write or delete on
// one instance invalidates the key on every other instance of the service.
//
// presets owns the local copies (L1), their expiry and eviction, request
// coalescing for loads, and the mapping of cache keys to mesh keys
// (namespaces). Values never cross the network, only keys; presets never
// keeps a value it cannot invalidate: an invalidation that may have been
// missed (engine.EventGap) flushes the whole cache, and nothing held is
// served while the node cannot vouch for it: a Gap pending and not flushed
// for (engine.Node.GapPending), or a member not heard for SuspectAfter
// (engine.Node.Silent) — reads then pass through to the loader, counted in
// Stats.
//
// A service that already has a cache of its own keeps it and wires it to a
// node with Attach: anything implementing Invalidator is then invalidated
// by the mesh under the same rules (adapters for otter and golang-lru are
// the nested modules under adapters/); Attachment.Trusted tells the
// application when what its cache holds may be served.
package presets
