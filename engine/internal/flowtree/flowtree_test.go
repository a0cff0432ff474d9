package flowtree

import (
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func params() Params {
	return Params{MaxOrigins: 2, MaxChildren: 3, Stale: 80 * time.Millisecond}
}

// step is one input to a Table and what it must answer.
type step struct {
	report           bool // a Report (else a Progress query)
	origin, epoch    uint64
	child, cum       uint64 // Report
	own              uint64 // Progress
	at               time.Duration
	wantOK           bool   // Report's answer
	wantProgress     uint64 // Progress's answer
	wantRefusedAfter uint64
}

func rep(origin, epoch, child, cum uint64, at time.Duration, ok bool, refused uint64) step {
	return step{report: true, origin: origin, epoch: epoch, child: child, cum: cum, at: at, wantOK: ok, wantRefusedAfter: refused}
}

func prog(origin, epoch, own uint64, at time.Duration, want uint64, refused uint64) step {
	return step{origin: origin, epoch: epoch, own: own, at: at, wantProgress: want, wantRefusedAfter: refused}
}

func TestTable(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"no reports: own progress", []step{
			prog(1, 1, 40, 0, 40, 0),
		}},
		{"slowest child lowers it", []step{
			rep(1, 1, 10, 30, 0, true, 0),
			rep(1, 1, 11, 20, 0, true, 0),
			rep(1, 1, 12, 50, 0, true, 0),
			prog(1, 1, 40, ms, 20, 0),
			rep(1, 1, 11, 35, 2*ms, true, 0), // the slowest catches up
			prog(1, 1, 40, 3*ms, 30, 0),
		}},
		{"never above own", []step{
			rep(1, 1, 10, 90, 0, true, 0),
			prog(1, 1, 40, 0, 40, 0),
		}},
		{"reports only advance", []step{
			rep(1, 1, 10, 30, 0, true, 0),
			rep(1, 1, 10, 10, ms, true, 0), // reordered: the older report
			prog(1, 1, 40, ms, 30, 0),
		}},
		{"stale child behind holds no one back, progress ends it", []step{
			rep(1, 1, 10, 30, 0, true, 0),
			prog(1, 1, 40, 0, 30, 0), // behind from here
			prog(1, 1, 40, 79*ms, 30, 0),
			prog(1, 1, 40, 80*ms, 40, 0),
			rep(1, 1, 10, 30, 90*ms, true, 0), // no progress: still stale
			prog(1, 1, 40, 91*ms, 40, 0),
			rep(1, 1, 10, 31, 100*ms, true, 0), // progress
			prog(1, 1, 40, 101*ms, 31, 0),
			prog(1, 1, 40, 180*ms, 31, 0),
			prog(1, 1, 40, 181*ms, 40, 0),
		}},
		{"an old report holds again once we get ahead of it", []step{
			rep(1, 1, 10, 40, 0, true, 0),
			prog(1, 1, 40, time.Hour, 40, 0),
			prog(1, 1, 50, time.Hour+ms, 40, 0),
			prog(1, 1, 50, time.Hour+80*ms, 40, 0),
			prog(1, 1, 50, time.Hour+81*ms, 50, 0),
		}},
		{"caught-up child is never stale", []step{
			rep(1, 1, 10, 40, 0, true, 0),
			prog(1, 1, 40, time.Hour, 40, 0),
		}},
		{"per origin", []step{
			rep(1, 1, 10, 5, 0, true, 0),
			prog(2, 1, 40, 0, 40, 0),
			prog(1, 1, 40, 0, 5, 0),
		}},
		{"later epoch forgets, earlier refused", []step{
			rep(1, 1, 10, 5, 0, true, 0),
			rep(1, 2, 11, 7, 0, true, 0),
			prog(1, 2, 40, 0, 7, 0),
			prog(1, 1, 40, 0, 40, 0), // asked about the old epoch: own
			rep(1, 1, 10, 3, 0, false, 1),
			prog(1, 2, 40, 0, 7, 1),
		}},
		{"children capped", []step{
			rep(1, 1, 10, 30, 0, true, 0),
			rep(1, 1, 11, 30, 0, true, 0),
			rep(1, 1, 12, 30, 0, true, 0),
			rep(1, 1, 13, 1, 0, false, 1),
			rep(1, 1, 10, 31, 0, true, 1), // a known child still reports
			prog(1, 1, 40, 0, 30, 1),
		}},
		{"origins capped", []step{
			rep(1, 1, 10, 30, 0, true, 0),
			rep(2, 1, 10, 30, 0, true, 0),
			rep(3, 1, 10, 1, 0, false, 1),
			prog(3, 1, 40, 0, 40, 1),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(params())
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.report {
					if ok := tb.Report(s.origin, s.epoch, s.child, s.cum, now); ok != s.wantOK {
						t.Fatalf("step %d: Report(%+v) = %v, want %v", i, s, ok, s.wantOK)
					}
				} else if got := tb.Progress(s.origin, s.epoch, s.own, now); got != s.wantProgress {
					t.Fatalf("step %d: Progress(origin %d, epoch %d, own %d) = %d, want %d", i, s.origin, s.epoch, s.own, got, s.wantProgress)
				}
				if r := tb.Refused(); r != s.wantRefusedAfter {
					t.Fatalf("step %d: refused %d, want %d", i, r, s.wantRefusedAfter)
				}
			}
		})
	}
}

func TestHolding(t *testing.T) {
	tb := New(params())
	tb.Report(1, 1, 12, 10, t0.Add(-time.Second))
	tb.Progress(1, 1, 40, t0.Add(-time.Second)) // child 12 behind since: stale at t0
	tb.Report(1, 1, 10, 30, t0)
	tb.Report(1, 1, 11, 40, t0)
	if h := tb.Holding(1, 1, 40, t0); h != 1 {
		t.Fatalf("Holding = %d, want 1 (one behind, one caught up, one stale)", h)
	}
	if h := tb.Holding(1, 2, 40, t0); h != 0 {
		t.Fatalf("Holding on another epoch = %d, want 0", h)
	}
}

func TestReset(t *testing.T) {
	tb := New(params())
	tb.Report(1, 1, 10, 5, t0)
	tb.Report(2, 1, 10, 5, t0)
	tb.Reset([]uint64{1, 7})
	if tb.Len() != 1 {
		t.Fatalf("Len after Reset = %d, want 1 (origin 2 left the view)", tb.Len())
	}
	if p := tb.Progress(1, 1, 40, t0); p != 40 {
		t.Fatalf("Progress after Reset = %d, want 40: children's reports of the old tree kept", p)
	}
	// The origin kept its slot and the next report needs no room.
	tb.Report(2, 1, 10, 5, t0)
	if tb.Report(3, 1, 10, 5, t0) {
		t.Fatal("a third origin was taken past MaxOrigins 2")
	}
}

// TestZeroAlloc: reports and queries on tracked origins allocate nothing,
// nor does a Reset that keeps them.
func TestZeroAlloc(t *testing.T) {
	tb := New(Params{MaxOrigins: 16, MaxChildren: 11, Stale: time.Second})
	live := []uint64{1, 2, 3}
	for o := uint64(1); o <= 3; o++ {
		for c := uint64(10); c < 21; c++ {
			tb.Report(o, 1, c, 1, t0)
		}
	}
	cum := uint64(1)
	now := t0
	allocs := testing.AllocsPerRun(1000, func() {
		cum++
		now = now.Add(time.Millisecond)
		for o := uint64(1); o <= 3; o++ {
			for c := uint64(10); c < 21; c++ {
				tb.Report(o, 1, c, cum, now)
			}
			if tb.Progress(o, 1, cum+5, now) != cum {
				panic("wrong progress")
			}
		}
		if cum%100 == 0 {
			tb.Reset(live)
		}
	})
	if allocs != 0 {
		t.Fatalf("Report/Progress/Reset allocate %.2f per round", allocs)
	}
}

// TestBehindNotedForEveryChild: the time a child fell behind is noted
// even while another, slower one sets the answer.
func TestBehindNotedForEveryChild(t *testing.T) {
	ms := time.Millisecond
	tb := New(params())
	tb.Report(1, 1, 10, 30, t0)
	tb.Report(1, 1, 11, 35, t0)
	tb.Progress(1, 1, 40, t0) // both behind from t0
	tb.Report(1, 1, 10, 36, t0.Add(ms))
	if p := tb.Progress(1, 1, 40, t0.Add(80*ms)); p != 36 {
		t.Fatalf("Progress = %d, want 36 (child 11 stale, child 10 behind since 80 ms)", p)
	}
}
