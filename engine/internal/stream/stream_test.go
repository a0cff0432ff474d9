package stream

import (
	"testing"
	"time"
)

var params = Params{Grace: time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond, RepairTimeout: time.Second}

const ms = time.Millisecond

func newStream(cum uint64) *Stream {
	var s Stream
	s.Reset(1, cum)
	return &s
}

// balanced asserts the counter invariant once no gap is open.
func balanced(t *testing.T, s *Stream, total Tally) {
	t.Helper()
	if s.Open() {
		t.Fatalf("gap still open: cum %d known %d", s.cum, s.known)
	}
	if total.Detected != total.Repaired+total.Lost+total.NotOwed {
		t.Fatalf("Detected %d != Repaired %d + Lost %d + NotOwed %d", total.Detected, total.Repaired, total.Lost, total.NotOwed)
	}
}

func add(total *Tally, t Tally) {
	total.Detected += t.Detected
	total.Repaired += t.Repaired
	total.Lost += t.Lost
	total.NotOwed += t.NotOwed
}

func TestObserveInOrderAndDuplicates(t *testing.T) {
	s := newStream(0)
	var tl Tally
	for q := uint64(1); q <= 100; q++ {
		if v, _ := s.Observe(q, 0, &tl); v != New {
			t.Fatalf("seq %d: %v", q, v)
		}
	}
	if v, _ := s.Observe(50, 0, &tl); v != Duplicate {
		t.Fatalf("repeat: %v", v)
	}
	if s.Cum() != 100 || s.Open() || tl != (Tally{}) {
		t.Fatalf("cum %d open %v tally %+v", s.Cum(), s.Open(), tl)
	}
}

func TestGapNackRepair(t *testing.T) {
	s := newStream(0)
	var tl, total Tally
	s.Observe(1, 0, &tl)
	s.Observe(5, 0, &tl) // 2..4 missing
	if tl.Detected != 3 || !s.Open() {
		t.Fatalf("detected %d open %v", tl.Detected, s.Open())
	}
	add(&total, tl)
	tl = Tally{}
	// Within the grace nothing fresh is asked; the first retry goes at once.
	fresh, retry := s.Due(0, &params, false, &tl)
	if fresh != 0 || retry != 2 {
		t.Fatalf("at 0: fresh %d retry %d", fresh, retry)
	}
	got := s.AppendMissing(nil, retry, 10)
	if len(got) != 1 || got[0] != (SeqRange{2, 4}) {
		t.Fatalf("missing %v", got)
	}
	// Backoff: the first retry went at once and doubled RetryMin.
	if _, retry := s.Due(9*ms, &params, false, &tl); retry != 0 {
		t.Fatalf("retry before backoff: %d", retry)
	}
	if _, retry := s.Due(10*ms, &params, false, &tl); retry != 2 {
		t.Fatalf("retry after backoff: %d", retry)
	}
	for _, q := range []uint64{3, 2, 4} {
		v, after := s.Observe(q, 12*ms, &tl)
		if v != New || after != 12*ms {
			t.Fatalf("seq %d: %v after %v", q, v, after)
		}
	}
	add(&total, tl)
	if s.Cum() != 5 || tl.Repaired != 3 {
		t.Fatalf("cum %d repaired %d", s.Cum(), tl.Repaired)
	}
	balanced(t, s, total)
}

func TestFreshNackAfterGrace(t *testing.T) {
	s := newStream(0)
	var tl Tally
	s.Observe(1, 0, &tl)
	s.Due(0, &params, false, &tl) // nothing open yet
	s.Observe(3, 10*ms, &tl)      // 2 missing, noticed at 10ms
	s.Due(10*ms, &params, false, &tl)
	s.AppendMissing(nil, 2, 10) // the retry asked for 2: nackedTo = 3
	s.Observe(6, 11*ms, &tl)    // 4, 5 newly missing
	if fresh, _ := s.Due(11*ms, &params, false, &tl); fresh != 0 {
		t.Fatalf("fresh within grace: %d", fresh)
	}
	fresh, _ := s.Due(12*ms, &params, false, &tl)
	if fresh != 4 {
		t.Fatalf("fresh after grace from %d, want 4 (only the new ones)", fresh)
	}
	if got := s.AppendMissing(nil, fresh, 10); len(got) != 1 || got[0] != (SeqRange{4, 5}) {
		t.Fatalf("fresh ranges %v", got)
	}
}

func TestGiveUpPaths(t *testing.T) {
	cases := []struct {
		name   string
		run    func(s *Stream, tl *Tally)
		reason Reason
		lost   uint64
	}{
		{"timeout", func(s *Stream, tl *Tally) {
			s.Observe(1, 0, tl)
			s.Observe(4, 0, tl)
			s.Due(params.RepairTimeout+ms, &params, false, tl)
		}, Unreachable, 2},
		{"origin gone", func(s *Stream, tl *Tally) {
			s.Observe(1, 0, tl)
			s.Observe(4, 0, tl)
			s.Due(ms, &params, true, tl)
		}, OriginDead, 2},
		{"evicted range", func(s *Stream, tl *Tally) {
			s.Observe(1, 0, tl)
			s.Observe(10, 0, tl) // 2..9 missing
			s.GiveUpRange(2, 9, Evicted, 0, tl)
		}, Evicted, 8},
		{"hole in the middle evicted", func(s *Stream, tl *Tally) {
			s.Observe(1, 0, tl)
			s.Observe(10, 0, tl)
			s.GiveUpRange(5, 6, Evicted, 0, tl)
			for q := uint64(2); q <= 9; q++ {
				if q != 5 && q != 6 {
					s.Observe(q, ms, tl)
				}
			}
		}, Evicted, 2},
		{"jump past the window", func(s *Stream, tl *Tally) {
			s.Observe(1, 0, tl)
			s.Observe(3*WindowSize, 0, tl)
			s.GiveUpAll(TooOld, 0, tl)
		}, TooOld, 3*WindowSize - 2},
		{"announce far ahead", func(s *Stream, tl *Tally) {
			s.Observe(1, 0, tl)
			s.Announce(2*WindowSize, 0, tl)
		}, TooOld, 2*WindowSize - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStream(0)
			var tl Tally
			c.run(s, &tl)
			l, ok := s.TakeLoss()
			if !ok || l.Reason != c.reason || l.Missing != c.lost || tl.Lost != c.lost {
				t.Fatalf("loss %+v (ok %v), tally %+v: want %v × %d", l, ok, tl, c.reason, c.lost)
			}
			if _, again := s.TakeLoss(); again {
				t.Fatal("a loss taken twice")
			}
			balanced(t, s, tl)
		})
	}
}

// Losses given up together are one run: one Gap event.
func TestLossesCoalesce(t *testing.T) {
	s := newStream(0)
	var tl Tally
	s.Observe(1, 0, &tl)
	s.Observe(3*WindowSize, 0, &tl)
	s.Observe(5*WindowSize, 0, &tl)
	s.Observe(7*WindowSize, 0, &tl)
	l, ok := s.TakeLoss()
	if !ok || l.First != 2 || l.Last != 6*WindowSize || l.Missing != tl.Lost {
		t.Fatalf("loss %+v, tally %+v", l, tl)
	}
	if tl.Detected < tl.Lost {
		t.Fatalf("detected %d < lost %d", tl.Detected, tl.Lost)
	}
}

func TestRebase(t *testing.T) {
	t.Run("down: earlier frames owed", func(t *testing.T) {
		s := newStream(99) // first saw 100
		var tl Tally
		s.Observe(100, 0, &tl)
		s.Rebase(39, 0, &tl)
		if s.Cum() != 39 || tl.Detected != 60 {
			t.Fatalf("cum %d detected %d", s.Cum(), tl.Detected)
		}
		for q := uint64(40); q < 100; q++ {
			s.Observe(q, ms, &tl)
		}
		if s.Cum() != 100 || tl.Repaired != 60 {
			t.Fatalf("cum %d repaired %d", s.Cum(), tl.Repaired)
		}
		balanced(t, s, tl)
	})
	t.Run("up: noticed hole not owed", func(t *testing.T) {
		s := newStream(0)
		var tl Tally
		s.Observe(1, 0, &tl)
		s.Observe(20, 0, &tl) // 2..19 noticed
		s.Rebase(14, 0, &tl)  // in the fan-out from 15 on
		if tl.NotOwed != 13 || s.Cum() != 14 {
			t.Fatalf("not owed %d cum %d", tl.NotOwed, s.Cum())
		}
		for q := uint64(15); q < 20; q++ {
			s.Observe(q, ms, &tl)
		}
		balanced(t, s, tl)
	})
	t.Run("down beyond one window", func(t *testing.T) {
		s := newStream(3 * WindowSize)
		var tl Tally
		s.Observe(3*WindowSize+1, 0, &tl)
		s.Rebase(0, 0, &tl)
		l, ok := s.TakeLoss()
		if !ok || l.Reason != TooOld || l.First != 1 {
			t.Fatalf("loss %+v ok %v", l, ok)
		}
		s.GiveUpAll(Unreachable, 0, &tl)
		balanced(t, s, tl)
	})
}

// Hostile sequences never make a call walk a gap sequence by sequence,
// and never wrap the window arithmetic.
func TestHostileSequences(t *testing.T) {
	s := newStream(0)
	var tl Tally
	s.Observe(1, 0, &tl)
	s.Announce(^uint64(0), 0, &tl) // clamped to MaxSeq, given up as too old
	s.Observe(MaxSeq, 0, &tl)
	if s.Cum() < MaxSeq-WindowSize || s.Known() != MaxSeq {
		t.Fatalf("cum %d known %d", s.Cum(), s.Known())
	}
	// A far DATA frame, then a rebase down to the epoch's start: what lies
	// below the window is given up arithmetically (this once walked 2^40
	// sequences).
	s = newStream(1<<40 - 1)
	s.Observe(1<<40, 0, &tl)
	start := time.Now()
	s.Rebase(0, 0, &tl)
	s.GiveUpAll(Unreachable, 0, &tl)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("rebase and give-up took %v", d)
	}
	if s.Cum() != 1<<40 || s.Open() {
		t.Fatalf("cum %d open %v", s.Cum(), s.Open())
	}
	var reset Stream
	reset.Reset(1, ^uint64(0))
	if reset.Cum() != MaxSeq {
		t.Fatalf("Reset did not clamp: %d", reset.Cum())
	}
}

func TestZeroAllocSteadyState(t *testing.T) {
	s := newStream(0)
	var tl Tally
	s.Observe(1, 0, &tl)
	s.Observe(3, 0, &tl) // allocate the loss table once
	s.Observe(2, 0, &tl)
	buf := make([]SeqRange, 0, 16)
	q := uint64(4)
	now := time.Duration(0)
	allocs := testing.AllocsPerRun(1000, func() {
		now += ms
		s.Observe(q+1, now, &tl) // q missing
		s.Due(now, &params, false, &tl)
		buf = s.AppendMissing(buf[:0], s.Cum()+1, 16)
		s.Observe(q, now, &tl) // repaired
		s.TakeLoss()
		q += 2
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per step", allocs)
	}
	if tl.Repaired < 1000 {
		t.Fatalf("the measured path did not repair: %+v", tl)
	}
}

func TestWindow(t *testing.T) {
	w := NewWindow(64)
	for _, c := range []struct {
		seq  uint64
		want Verdict
	}{{1, New}, {1, Duplicate}, {64, New}, {65, New}, {1, BelowWindow}, {2, New}, {130, New}, {2, BelowWindow}} {
		if v := w.Observe(c.seq); v != c.want {
			t.Fatalf("Observe(%d) = %v, want %v", c.seq, v, c.want)
		}
	}
	if w.Base() != 67 || w.High() != 130 {
		t.Fatalf("base %d high %d", w.Base(), w.High())
	}
	if got := w.Lower(60); got != 67 {
		t.Fatalf("Lower below what high allows moved base to %d", got)
	}
	w.Reset()
	w.Slide(90)
	w.Observe(100)
	if got := w.Lower(50); got != 50 || w.Has(50) || !w.Has(100) {
		t.Fatalf("Lower(50) = %d", got)
	}
}
