package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// latencyHist is a log-linear histogram of durations: 16 sub-buckets per
// power of two (about 6% resolution) from 1ns to hours. Record is lock-free
// and safe for concurrent use with readers.
type latencyHist struct {
	buckets [64 * histSub]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Int64
}

const (
	histSubBits = 4
	histSub     = 1 << histSubBits
)

func histIndex(ns uint64) int {
	if ns < histSub {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 // ≥ histSubBits
	sub := (ns >> (exp - histSubBits)) & (histSub - 1)
	return (exp-histSubBits+1)*histSub + int(sub)
}

// histValue returns the middle of bucket i.
func histValue(i int) time.Duration {
	if i < histSub {
		return time.Duration(i)
	}
	exp := i/histSub + histSubBits - 1
	sub := uint64(i % histSub)
	lo := (uint64(1) << exp) | sub<<(exp-histSubBits)
	width := uint64(1) << (exp - histSubBits)
	return time.Duration(lo + width/2)
}

func (h *latencyHist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.buckets[histIndex(uint64(d))].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// addTo merges h into dst's counts (dst indexed like buckets).
func (h *latencyHist) addTo(dst []uint64) (max time.Duration) {
	for i := range h.buckets {
		dst[i] += h.buckets[i].Load()
	}
	return time.Duration(h.max.Load())
}

// quantiles returns the durations at each q (0..1) of the counts in c.
func quantiles(c []uint64, qs ...float64) []time.Duration {
	var total uint64
	for _, n := range c {
		total += n
	}
	out := make([]time.Duration, len(qs))
	if total == 0 {
		return out
	}
	for j, q := range qs {
		rank := uint64(q*float64(total-1)) + 1
		var seen uint64
		for i, n := range c {
			seen += n
			if seen >= rank {
				out[j] = histValue(i)
				break
			}
		}
	}
	return out
}

func newCounts() []uint64 { return make([]uint64, 64*histSub) }
