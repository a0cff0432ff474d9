package coherence

import (
	"slices"
	"testing"
	"time"
)

// TestCheckerFlags feeds the checker a hand-made history and reads, so a
// checker that lets stale reads through fails here and not silently.
func TestCheckerFlags(t *testing.T) {
	ms := int64(time.Millisecond)
	d := newDatabase(2, time.Now())
	// k0: v1 at 100 ms by instance 0, v2 at 300 ms by instance 0.
	d.keys[0].hist = append(d.keys[0].hist, commit{at: 100 * ms, by: 0}, commit{at: 300 * ms, by: 0})
	// k1: v1 at 1000 ms by instance 1.
	d.keys[1].hist = append(d.keys[1].hist, commit{at: 1000 * ms, by: 1})
	bound := 200 * time.Millisecond
	reads := [][]read{{
		{start: 50 * ms, end: 51 * ms, key: 0, ver: 0, inst: 2},     // newest: fine
		{start: 250 * ms, end: 251 * ms, key: 0, ver: 0, inst: 2},   // behind by 150 ms: within bound
		{start: 301 * ms, end: 302 * ms, key: 0, ver: 0, inst: 2},   // behind by 201 ms: stale
		{start: 600 * ms, end: 601 * ms, key: 0, ver: 2, inst: 2},   // newest: fine
		{start: 400 * ms, end: 401 * ms, key: 0, ver: 3, inst: 2},   // never committed: invalid
		{start: 200 * ms, end: 250 * ms, key: 0, ver: 2, inst: 2},   // committed after the read ended: invalid
		{start: 1500 * ms, end: 1501 * ms, key: 1, ver: 0, inst: 2}, // 500 ms behind, but cut off until 1400 ms: excused
		{start: 1700 * ms, end: 1701 * ms, key: 1, ver: 0, inst: 2}, // 300 ms after the heal: stale
		{start: 1700 * ms, end: 1701 * ms, key: 1, ver: 0, inst: 3}, // instance 3 was not cut off: stale
	}}
	cuts := []cut{{from: []int{1}, to: []int{2}, start: 900 * ms, heal: 1400 * ms}}
	v := check(d, reads, cuts, nil, nil, 0, nil, bound)
	want := verdict{Checked: 9, Stale: 3, Invalid: 2, Excused: 1, Behind: 5}
	if v.Checked != want.Checked || v.Stale != want.Stale || v.Invalid != want.Invalid || v.Excused != want.Excused || v.Behind != want.Behind {
		t.Fatalf("got %v, want checked %d stale %d invalid %d excused %d behind %d\n%v",
			v, want.Checked, want.Stale, want.Invalid, want.Excused, want.Behind, v.Examples)
	}
	if len(v.Examples) != 5 {
		t.Errorf("%d examples, want 5 (the first five stale or invalid reads)", len(v.Examples))
	}

	// A stall of 50 ms between the commit at 1000 ms and the reads at
	// 1700 ms excuses the 100 ms over the bound of neither: only a stall
	// at least as long as the excess does.
	short := []stall{{start: 1100 * ms, end: 1150 * ms}}
	if v := check(d, reads, cuts, short, nil, 0, nil, bound); v.Stale != 3 || v.Starved != 0 {
		t.Errorf("with a 50 ms stall: %v, want 3 stale, none excused by the stall", v)
	}
	long := []stall{{start: 1100 * ms, end: 1250 * ms}, {start: 1600 * ms, end: 1620 * ms}}
	// Instance 3's read (700 ms after the commit, 500 over) is still
	// stale; instance 2's (300 ms after the heal, 100 over, 20 ms of stall
	// after the heal) too; the read at 301 ms (1 ms over, no stall) too.
	if v := check(d, reads, cuts, long, nil, 0, nil, bound); v.Stale != 3 || v.Starved != 0 {
		t.Errorf("with stalls outside the windows: %v, want 3 stale", v)
	}
	covering := []stall{{start: 1450 * ms, end: 1560 * ms}, {start: 1000 * ms, end: 1200 * ms}}
	slices.SortFunc(covering, func(a, b stall) int { return int(a.start - b.start) })
	// Now instance 2's read after the heal (100 ms over, 110 ms stalled
	// after the heal) is excused, instance 3's (500 ms over, 310 ms
	// stalled) is not.
	if v := check(d, reads, cuts, covering, nil, 0, nil, bound); v.Stale != 2 || v.Starved != 1 {
		t.Errorf("with stalls covering one read's excess: %v, want 2 stale, 1 excused by a stall", v)
	}
	// Unless the invalidation was never sent to the reader while the
	// process ran for longer than runMax (instance 2's read: 190 ms of
	// 300 unstalled): then the stall excuses nothing.
	never := func(*read, commit) bool { return false }
	if v := check(d, reads, cuts, covering, never, 100*time.Millisecond, nil, bound); v.Stale != 3 || v.Starved != 0 {
		t.Errorf("with stalls but nothing sent: %v, want 3 stale", v)
	}
	if v := check(d, reads, cuts, covering, never, 200*time.Millisecond, nil, bound); v.Stale != 2 || v.Starved != 1 {
		t.Errorf("with stalls, nothing sent, but the process ran only 190 ms: %v, want 2 stale, 1 excused", v)
	}
}

func TestStalledWithin(t *testing.T) {
	ss := []stall{{10, 20}, {30, 35}, {50, 80}}
	for _, c := range []struct{ from, to, want int64 }{
		{0, 100, 45}, {15, 32, 7}, {20, 30, 0}, {60, 70, 10}, {0, 5, 0}, {79, 200, 1},
	} {
		if got := stalledWithin(ss, c.from, c.to); got != c.want {
			t.Errorf("stalledWithin(%d, %d) = %d, want %d", c.from, c.to, got, c.want)
		}
	}
}

// TestDatabaseVersions checks the database's history: versions in commit
// order, commit times ascending, deletes recorded.
func TestDatabaseVersions(t *testing.T) {
	d := newDatabase(1, time.Now())
	if r := d.read(0); r.Ver != 0 || r.Deleted {
		t.Fatalf("initial read %+v", r)
	}
	a := d.write(0, 0, false)
	b := d.write(0, 1, true)
	if a.Ver != 1 || b.Ver != 2 || !b.Deleted {
		t.Fatalf("writes returned %+v, %+v", a, b)
	}
	if r := d.read(0); r != b {
		t.Fatalf("read %+v after writes, want %+v", r, b)
	}
	h := d.keys[0].hist
	if len(h) != 3 || h[1].at > h[2].at || h[2].by != 1 || !h[2].del {
		t.Fatalf("history %+v", h)
	}
	if newestAt(h, h[2].at) != 2 || newestAt(h, h[2].at-1) != 1 {
		t.Errorf("newestAt disagrees with the history %+v", h)
	}
}
