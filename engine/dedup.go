package engine

import (
	"encoding/binary"

	"github.com/warpmesh/warpmesh/engine/internal/stream"

	"github.com/cespare/xxhash/v2"
)

// Deduplication has two layers, both owned by the receive worker:
//
//   - stream.Window, per origin: an exact bitmap of the last windowSize
//     sequences. It decides for every frame inside the window, so a frame is
//     never dropped by a false positive there.
//   - bloom, shared: an xxhash-keyed bloom filter over (origin, epoch, seq)
//     with two rotating generations, so it never saturates. It remembers far
//     more frames than the windows and decides for frames older than their
//     window (late relays, late retransmissions): "definitely new" is applied,
//     "maybe seen" is dropped as too old.

const (
	windowSize = stream.WindowSize // sequences tracked exactly per origin (2 KiB)

	bloomBits     = 1 << 21 // bits per generation (256 KiB)
	bloomWords    = bloomBits / 64
	bloomCapacity = 1 << 17 // insertions per generation before rotating
)

// bloom is a two-generation bloom filter. Inserts go to the current
// generation; lookups consult both; when the current one holds
// bloomCapacity keys the older one is cleared and becomes current.
type bloom struct {
	gen   [2][bloomWords]uint64
	cur   int
	count int
}

func newBloom() *bloom { return &bloom{} }

func frameKey(origin, epoch, seq uint64) uint64 {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], origin)
	binary.LittleEndian.PutUint64(b[8:], epoch)
	binary.LittleEndian.PutUint64(b[16:], seq)
	return xxhash.Sum64(b[:])
}

// probes derives three bit positions from one 64-bit hash.
func probes(h uint64) (a, b, c uint64) {
	return h % bloomBits, (h >> 21) % bloomBits, (h>>42 ^ h*0x9E3779B97F4A7C15>>43) % bloomBits
}

func (f *bloom) mayContain(h uint64) bool {
	a, b, c := probes(h)
	for g := range f.gen {
		bits := &f.gen[g]
		if bits[a/64]&(1<<(a%64)) != 0 && bits[b/64]&(1<<(b%64)) != 0 && bits[c/64]&(1<<(c%64)) != 0 {
			return true
		}
	}
	return false
}

func (f *bloom) add(h uint64) {
	if f.count >= bloomCapacity {
		f.cur ^= 1
		f.gen[f.cur] = [bloomWords]uint64{}
		f.count = 0
	}
	a, b, c := probes(h)
	bits := &f.gen[f.cur]
	bits[a/64] |= 1 << (a % 64)
	bits[b/64] |= 1 << (b % 64)
	bits[c/64] |= 1 << (c % 64)
	f.count++
}
