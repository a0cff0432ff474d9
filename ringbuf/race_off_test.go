//go:build !race

package ringbuf

// raceEnabled reports whether the race detector is on; it slows the stress
// tests down, so they move fewer items.
const raceEnabled = false
