package main

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Demo keys carry what the receiver needs to account for them:
//
//	wm:<phase>:<publisher>:<seq>:<sent>.....
//
// phase is one letter (p = latency probe, b = burst, r = after the
// rejoin), publisher the
// index of the publishing node, seq its counter in that phase, sent the
// nanoseconds since the demo's start on its monotonic clock (every node
// shares the process's clock), and dots pad the key to --key-size.

const (
	phaseProbe  = 'p'
	phaseBurst  = 'b'
	phaseRejoin = 'r'
	numPhases   = 3
)

// phaseIndex maps a phase letter to 0..numPhases-1, or -1.
func phaseIndex(p byte) int {
	switch p {
	case phaseProbe:
		return 0
	case phaseBurst:
		return 1
	case phaseRejoin:
		return 2
	}
	return -1
}

// appendDemoKey appends a key to dst (reused by the publisher).
func appendDemoKey(dst []byte, phase byte, pub, seq int, sent time.Duration, size int) []byte {
	dst = append(dst, 'w', 'm', ':', phase, ':')
	dst = strconv.AppendInt(dst, int64(pub), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(sent), 10)
	for len(dst) < size {
		dst = append(dst, '.')
	}
	return dst
}

// parseDemoKey reads a key built by appendDemoKey; ok is false for any
// other key. It does not allocate.
func parseDemoKey(k []byte) (phase byte, pub, seq int, sent time.Duration, ok bool) {
	if len(k) < 6 || k[0] != 'w' || k[1] != 'm' || k[2] != ':' || k[4] != ':' {
		return 0, 0, 0, 0, false
	}
	phase = k[3]
	k = k[5:]
	var nums [3]int64
	for i := range nums {
		j := 0
		for j < len(k) && k[j] >= '0' && k[j] <= '9' {
			nums[i] = nums[i]*10 + int64(k[j]-'0')
			j++
		}
		if j == 0 {
			return 0, 0, 0, 0, false
		}
		k = k[j:]
		if i < 2 {
			if len(k) == 0 || k[0] != ':' {
				return 0, 0, 0, 0, false
			}
			k = k[1:]
		}
	}
	return phase, int(nums[0]), int(nums[1]), time.Duration(nums[2]), true
}

// seqSet records which sequence numbers of one publisher arrived. Written
// by one node's receive goroutine; counts are read by anyone.
type seqSet struct {
	bits     []uint64
	distinct atomic.Uint64
	dups     atomic.Uint64
}

func (s *seqSet) add(seq int) {
	w := seq / 64
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, max(w+1, 2*len(s.bits))-len(s.bits))...)
	}
	m := uint64(1) << (seq % 64)
	if s.bits[w]&m != 0 {
		s.dups.Add(1)
		return
	}
	s.bits[w] |= m
	s.distinct.Add(1)
}

// receipts is what one node (one incarnation) received in the demo.
type receipts struct {
	mu      sync.Mutex // guards the bitsets against handlers of several goroutines
	sets    [numPhases][]seqSet
	latency [numPhases]latencyHist
	other   atomic.Uint64 // keys that are not demo keys (the coherence step)
	otherAt atomic.Int64  // when the last of those arrived, ns since start
	start   time.Time
}

func newReceipts(nodes int, start time.Time) *receipts {
	r := &receipts{start: start}
	for i := range r.sets {
		r.sets[i] = make([]seqSet, nodes)
	}
	return r
}

// handle accounts for one received key.
func (r *receipts) handle(key []byte, now time.Duration) {
	phase, pub, seq, sent, ok := parseDemoKey(key)
	pi := phaseIndex(phase)
	if !ok || pub >= len(r.sets[0]) || pi < 0 {
		r.other.Add(1)
		r.otherAt.Store(int64(now))
		return
	}
	r.mu.Lock()
	r.sets[pi][pub].add(seq)
	r.mu.Unlock()
	r.latency[pi].record(now - sent)
}

// distinct returns how many distinct keys arrived in phase, from everyone.
func (r *receipts) distinct(phase byte) uint64 {
	var t uint64
	for i := range r.sets[phaseIndex(phase)] {
		t += r.sets[phaseIndex(phase)][i].distinct.Load()
	}
	return t
}

// from returns how many distinct keys arrived in phase from pub.
func (r *receipts) from(phase byte, pub int) uint64 {
	return r.sets[phaseIndex(phase)][pub].distinct.Load()
}

func (r *receipts) dups() uint64 {
	var t uint64
	for p := range r.sets {
		for i := range r.sets[p] {
			t += r.sets[p][i].dups.Load()
		}
	}
	return t
}
