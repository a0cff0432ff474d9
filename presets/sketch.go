package presets

import "math/bits"

// sketch estimates how often each key was used recently: a count-min
// sketch of 4-bit counters, the frequency filter of TinyLFU (Einziger,
// Friedman, Manes, "TinyLFU: A Highly Efficient Cache Admission Policy").
//
// The table is an array of 64-byte blocks of eight words; a key picks one
// block from its hash, then one counter in each of four pairs of words, so
// an update or an estimate touches one cache line. An estimate is the
// smallest of the four counters (collisions only ever add). An update
// raises only the counters at that minimum (conservative update), which
// keeps collisions from inflating the keys that share a counter.
//
// Aging: after sampleSize updates every counter is halved, so the sketch
// forgets at the rate the cache turns over and a once-popular key loses
// its place to what is popular now. A counter saturates at 15.
//
// The sketch belongs to one shard and is guarded by the shard's lock;
// nothing in it allocates after newSketch.
type sketch struct {
	table      []uint64
	blockMask  uint64 // number of blocks - 1
	additions  int
	sampleSize int
}

const (
	sketchMax     = 15                 // a counter's ceiling
	sketchLowBits = 0x7777777777777777 // each nibble's low three bits
	sketchOneBits = 0x1111111111111111 // each nibble's lowest bit
)

// init sizes the sketch for a shard of capacity entries: one word (16
// counters) per entry, at least one block.
func (s *sketch) init(capacity int) {
	words := 1 << bits.Len(uint(max(capacity, 8)-1)) // power of two ≥ capacity, ≥ 8
	s.table = make([]uint64, words)
	s.blockMask = uint64(words/8 - 1)
	s.sampleSize = 10 * max(capacity, 8)
}

// spread derives the sketch's hash from a key's 30-bit hash; the shard
// index comes from other bits of the key's xxhash, so the sketch sees
// independent bits.
func spread(h uint32) uint64 {
	x := uint64(h) * 0x9e3779b97f4a7c15
	x ^= x >> 29
	x *= 0xbf58476d1ce4e5b9
	return x ^ x>>32
}

// counters returns, for hash x, the word index and bit shift of each of
// the key's four counters: counter i lives in word 2i or 2i+1 of the
// block, at one of its sixteen nibbles.
func (s *sketch) counters(x uint64) (word [4]int, shift [4]uint) {
	block := int((x>>40)&s.blockMask) * 8
	for i := range 4 {
		b := x >> (i * 8)
		word[i] = block + 2*i + int(b&1)
		shift[i] = uint((b>>1)&15) * 4
	}
	return word, shift
}

// estimate returns the key's recent frequency, 0..15.
func (s *sketch) estimate(h uint32) int {
	word, shift := s.counters(spread(h))
	m := sketchMax
	for i := range 4 {
		m = min(m, int(s.table[word[i]]>>shift[i]&15))
	}
	return m
}

// add records n uses of the key (n ≥ 1) and ages the table when the
// sample is full.
func (s *sketch) add(h uint32, n int) {
	word, shift := s.counters(spread(h))
	var c [4]int
	m := sketchMax
	for i := range 4 {
		c[i] = int(s.table[word[i]] >> shift[i] & 15)
		m = min(m, c[i])
	}
	if m == sketchMax {
		return
	}
	to := min(m+n, sketchMax)
	for i := range 4 {
		if c[i] < to { // conservative update: raise only what is below the new minimum
			s.table[word[i]] += uint64(to-c[i]) << shift[i]
		}
	}
	if s.additions += to - m; s.additions >= s.sampleSize {
		s.age()
	}
}

// age halves every counter. Halving truncates each odd counter; an
// addition raised about four counters, so the additions count loses a
// quarter of those truncations before it is halved too.
func (s *sketch) age() {
	odd := 0
	for i, w := range s.table {
		odd += bits.OnesCount64(w & sketchOneBits)
		s.table[i] = w >> 1 & sketchLowBits
	}
	s.additions = max(s.additions-odd/4, 0) / 2
}
