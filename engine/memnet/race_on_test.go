//go:build race

package memnet_test

// raceEnabled reports whether the race detector is on: simulated meshes
// shrink.
const raceEnabled = true
