package main

import (
	"testing"
	"time"
)

func TestDemoKeyRoundTrip(t *testing.T) {
	k := appendDemoKey(nil, phaseBurst, 3, 123456, 987654321*time.Nanosecond, 40)
	if len(k) != 40 {
		t.Fatalf("key %q is %d bytes, want 40", k, len(k))
	}
	phase, pub, seq, sent, ok := parseDemoKey(k)
	if !ok || phase != phaseBurst || pub != 3 || seq != 123456 || sent != 987654321 {
		t.Fatalf("parse %q = %c %d %d %v %v", k, phase, pub, seq, sent, ok)
	}
	for _, bad := range []string{"", "wm:", "wm:b:1:2", "wm:b:x:2:3", "config:color", "wm:b:1::3"} {
		if _, _, _, _, ok := parseDemoKey([]byte(bad)); ok {
			t.Errorf("parsed %q", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseDemoKey(k) }); n != 0 {
		t.Errorf("parseDemoKey allocates %v times", n)
	}
}

func TestReceiptsCountDistinct(t *testing.T) {
	r := newReceipts(3, time.Now())
	for _, s := range []int{0, 1, 1, 200, 64} {
		r.handle(appendDemoKey(nil, phaseBurst, 2, s, 0, 0), time.Millisecond)
	}
	r.handle(appendDemoKey(nil, phaseRejoin, 0, 5, 0, 0), time.Millisecond)
	r.handle([]byte("config:color"), 0)
	if got := r.distinct(phaseBurst); got != 4 {
		t.Errorf("burst distinct %d, want 4", got)
	}
	if got := r.from(phaseRejoin, 0); got != 1 {
		t.Errorf("rejoin from 0: %d, want 1", got)
	}
	if r.dups() != 1 || r.other.Load() != 1 {
		t.Errorf("dups %d other %d, want 1 1", r.dups(), r.other.Load())
	}
}
