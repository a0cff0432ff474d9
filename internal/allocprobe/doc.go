// Package allocprobe lets a test inject work, typically one heap
// allocation, into the engine's hot paths, to prove that the allocation
// gates see those paths: with a probe installed that allocates, every gate
// must fail. Production code only calls Hit, which costs one atomic load
// and a predicted branch when no probe is installed; nothing outside tests
// ever installs one.
package allocprobe
