package main

import (
	"testing"
	"time"
)

func TestLatencyHistQuantiles(t *testing.T) {
	var h latencyHist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	c := newCounts()
	max := h.addTo(c)
	if max != time.Millisecond {
		t.Errorf("max = %v, want 1ms", max)
	}
	q := quantiles(c, 0.5, 0.99)
	within := func(got, want time.Duration) bool {
		return got >= want*94/100 && got <= want*106/100
	}
	if !within(q[0], 500*time.Microsecond) || !within(q[1], 990*time.Microsecond) {
		t.Errorf("p50 %v p99 %v, want ~500µs ~990µs", q[0], q[1])
	}
	for _, ns := range []uint64{0, 1, 15, 16, 17, 1 << 20, 1<<40 + 12345} {
		i := histIndex(ns)
		v := uint64(histValue(i))
		if ns >= 16 && (v < ns*9/10 || v > ns*11/10) {
			t.Errorf("bucket of %d is %d (value %d)", ns, i, v)
		}
		if ns < 16 && v != ns {
			t.Errorf("small value %d → %d", ns, v)
		}
	}
}
