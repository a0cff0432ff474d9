package harness

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// Key layout, shared by every system:
//
//	0        8        16                KeySize
//	+--------+--------+-----------------+
//	|  seq   | sent ns|  'k' padding    |
//	+--------+--------+-----------------+
//
// seq numbers invalidations from 0; sent is CLOCK_MONOTONIC at publish.
const (
	keySeq  = 0
	keySent = 8
	// MinKeySize holds seq and send time.
	MinKeySize = 16
)

// pace is how the Latency publisher keeps its rate without holding a core:
// it sends every invalidation that is due, each stamped when it is sent,
// then sleeps until the next is due. A late wake-up sends a small burst,
// as a busy application would; the receivers measure it as it happened.
func runPublisher(spec *Spec, p Publisher, clk *Clock) (sent uint64, start, end int64, err error) {
	key := make([]byte, spec.KeySize)
	for i := range key {
		key[i] = 'k'
	}
	start = clk.Now()
	deadline := start + int64(spec.Duration)
	switch spec.Mode {
	case Latency:
		interval := int64(time.Second) / int64(spec.Rate)
		total := uint64(spec.Duration.Seconds() * float64(spec.Rate))
		for sent < total {
			now := clk.Now()
			due := min(uint64((now-start)/interval)+1, total)
			for ; sent < due; sent++ {
				binary.BigEndian.PutUint64(key[keySeq:], sent)
				binary.BigEndian.PutUint64(key[keySent:], uint64(clk.Now()))
				if err = p.Publish(key); err != nil {
					return sent, start, clk.Now(), err
				}
			}
			if err = p.Flush(); err != nil {
				return sent, start, clk.Now(), err
			}
			if wait := start + int64(sent)*interval - clk.Now(); wait > 0 {
				time.Sleep(time.Duration(wait))
			}
		}
	default:
		for {
			for range 1024 {
				binary.BigEndian.PutUint64(key[keySeq:], sent)
				if err = p.Publish(key); err != nil {
					return sent, start, clk.Now(), err
				}
				sent++
			}
			if clk.Now() >= deadline {
				break
			}
		}
		err = p.Flush()
	}
	return sent, start, clk.Now(), err
}

// tally is what a receiver process counts. deliver may be called from any
// goroutine; a mutex keeps it simple and costs far less than any network
// path measured here.
type tally struct {
	mu      sync.Mutex
	clk     *Clock
	latency bool
	count   uint64 // deliveries, duplicates included
	unique  uint64
	seen    []uint64 // bitset over seq
	lat     []int64  // ns, Latency mode
	sent    []int64  // send times parallel to lat, only with MESHBENCH_LATDUMP
	// last is when count last changed, as seen by a ticker: arrival time
	// without a clock read per key.
	last   int64
	ticked uint64 // unique at the last tick
}

func newTally(spec *Spec, clk *Clock) *tally {
	t := &tally{clk: clk, latency: spec.Mode == Latency}
	if t.latency {
		n := int(spec.Duration.Seconds()*float64(spec.Rate)) + 1
		t.lat = make([]int64, 0, n)
		t.seen = make([]uint64, n/64+1)
		if latDumpDir() != "" {
			t.sent = make([]int64, 0, n)
		}
	} else {
		t.seen = make([]uint64, 1<<16)
	}
	return t
}

func (t *tally) deliver(key []byte) {
	if len(key) < MinKeySize {
		return
	}
	var now int64
	if t.latency {
		now = t.clk.Now()
	}
	seq := binary.BigEndian.Uint64(key[keySeq:])
	t.mu.Lock()
	t.count++
	w := seq / 64
	if w >= uint64(len(t.seen)) {
		if w > 1<<28 { // nonsense sequence: count it, do not grow
			t.mu.Unlock()
			return
		}
		grown := make([]uint64, max(int(w+1), 2*len(t.seen))) // amortised: doubles
		copy(grown, t.seen)
		t.seen = grown
	}
	if bit := uint64(1) << (seq % 64); t.seen[w]&bit == 0 {
		t.seen[w] |= bit
		t.unique++
		if t.latency {
			sent := int64(binary.BigEndian.Uint64(key[keySent:]))
			t.lat = append(t.lat, now-sent)
			if t.sent != nil {
				t.sent = append(t.sent, sent)
			}
		}
	}
	t.mu.Unlock()
}

// tick records the arrival time of the latest progress; it returns the
// unique count.
func (t *tally) tick() uint64 {
	now := t.clk.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.unique != t.ticked {
		t.last = now
		t.ticked = t.unique
	}
	return t.unique
}

// Percentiles summarises latencies in microseconds.
type Percentiles struct {
	N                   int
	P50, P99, P999, Max float64
}

func percentiles(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	at := func(p float64) float64 { return float64(s[int(p*float64(len(s)-1))]) / 1e3 }
	return Percentiles{N: len(s), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: float64(s[len(s)-1]) / 1e3}
}
