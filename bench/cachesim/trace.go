package cachesim

import (
	"fmt"
	"math"
	"sort"
	"strconv"
)

// A Trace is a named, deterministic sequence of key ids; Keys maps an id
// to the key string the caches see.
type Trace struct {
	Name string
	IDs  []uint32
}

// Trace sizes used by the table: 2M requests over a space of 1M
// keys.
const (
	DefaultRequests = 2_000_000
	DefaultKeySpace = 1_000_000
)

// rng is a small deterministic generator (splitmix64), so a trace is the
// same on every run and every machine.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// float returns a uniform value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// zipf draws ranks 0..n-1 with P(rank k) ∝ 1/(k+1)^s, by binary search
// in the cumulative distribution (exact for any s > 0, unlike
// math/rand.Zipf, which needs s > 1).
type zipf struct {
	cdf []float64
	r   rng
}

func newZipf(n int, s float64, seed uint64) *zipf {
	z := &zipf{cdf: make([]float64, n), r: rng{seed}}
	sum := 0.0
	for k := range n {
		sum += 1 / math.Pow(float64(k+1), s)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	return z
}

func (z *zipf) next() int {
	u := z.r.float()
	return sort.SearchFloat64s(z.cdf, u)
}

// permute spreads ranks over the key space (a bijection of 0..n-1 for the
// n used here), so popular keys are not the low ids a scan starts at.
func permute(rank, n int) uint32 {
	const a = 2_654_435_761 // odd, and not a multiple of 5: coprime with 10^k
	return uint32((uint64(rank)*a + 12345) % uint64(n))
}

// Zipf returns requests drawn from a Zipf distribution with exponent s
// over keySpace keys.
func Zipf(s float64, requests, keySpace int, seed uint64) Trace {
	z := newZipf(keySpace, s, seed)
	ids := make([]uint32, requests)
	for i := range ids {
		ids[i] = permute(z.next(), keySpace)
	}
	return Trace{Name: fmt.Sprintf("Zipf %.2f", s), IDs: ids}
}

// ZipfScans is Zipf(0.99) interrupted by sequential scans: after every
// period Zipf requests comes a scan of scanLen consecutive ids, each scan
// starting where the previous one stopped. A scan reads every key once,
// the pattern that flushes an LRU cache.
func ZipfScans(requests, keySpace, period, scanLen int, seed uint64) Trace {
	z := newZipf(keySpace, 0.99, seed)
	ids := make([]uint32, 0, requests)
	cursor := 0
	for len(ids) < requests {
		for i := 0; i < period && len(ids) < requests; i++ {
			ids = append(ids, permute(z.next(), keySpace))
		}
		for i := 0; i < scanLen && len(ids) < requests; i++ {
			ids = append(ids, uint32(cursor))
			cursor = (cursor + 1) % keySpace
		}
	}
	return Trace{Name: "Zipf + scans", IDs: ids}
}

// Loop cycles over n keys in order: with n above the cache's capacity,
// LRU evicts every key just before its reuse and hits nothing.
func Loop(n, requests int) Trace {
	ids := make([]uint32, requests)
	for i := range ids {
		ids[i] = uint32(i % n)
	}
	return Trace{Name: fmt.Sprintf("loop %d", n), IDs: ids}
}

// Keys returns the key strings for ids 0..n-1.
func Keys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
	}
	return keys
}

// Standard returns the four traces for a cache of the given
// capacity: Zipf 0.80, Zipf 0.99, Zipf 0.99 with scans (a scan of
// capacity keys after every 4 × capacity requests: a fifth of the traffic
// is scans, each as long as the cache), and a loop over 1.2 × capacity
// keys.
func Standard(capacity, requests, keySpace int) []Trace {
	return []Trace{
		Zipf(0.80, requests, keySpace, 1),
		Zipf(0.99, requests, keySpace, 2),
		ZipfScans(requests, keySpace, 4*capacity, capacity, 3),
		Loop(capacity*12/10, requests),
	}
}
