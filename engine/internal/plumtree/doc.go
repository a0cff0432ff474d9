// Package plumtree is the peer state of Plumtree's lazy push for the
// engine's relay trees (meshes above DirectLimit): which origins' frames
// this node holds and has yet to announce (IHAVE), which frames lazy peers
// announced that have not arrived and whom to GRAFT for them, which peers
// grafted onto this node (eager children beyond the tree) and which tree
// children pruned it, and when a duplicate calls for a PRUNE.
//
// The eager push itself is the engine's deterministic origin-rooted tree
// (engine/fanout.go); this package adds what heals it where members'
// views disagree: a node its tree parent does not know hears of frames
// from IHAVEs, grafts the announcer, and is pushed the origin's frames
// from then on; a node pushed twice prunes the sender that is not its
// tree parent. Grafts and prunes hold until the view changes (Reset).
//
// It owns no goroutine, clock, socket or lock: callers pass the time in
// and act on the Actions Tick returns, and sleep until its deadline.
// Every table has a cap (Params). It allocates once per origin tracked
// and never in steady state. The engine's receive worker drives it
// (engine/plumtree.go).
package plumtree
