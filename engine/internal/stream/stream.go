package stream

import "time"

// WindowSize is how many DATA sequences a Stream tracks exactly.
const WindowSize = 16384

// MaxSeq is the highest sequence a Stream accepts: above it window
// arithmetic could wrap. A real origin never gets near it (2^62 frames);
// callers drop larger values as malformed, and Reset and Announce clamp.
const MaxSeq = 1 << 62

// Reason says why sequences were given up. The values match
// engine.GapReason.
type Reason uint8

// Reasons.
const (
	Evicted     Reason = iota + 1 // the origin no longer holds the frames
	Unreachable                   // repair did not succeed before its deadline
	OriginDead                    // the origin died with sequences missing
	NewEpoch                      // the origin restarted with sequences missing
	TooOld                        // the sequences fell out of the window
)

// Loss is a run of sequences of one epoch given up together: one Gap
// event. First and Last bound the run; Missing counts the sequences in it
// that were not received.
type Loss struct {
	Epoch, First, Last, Missing uint64
	Reason                      Reason
}

// Tally collects what a Stream's calls changed in the repair counters;
// the driver adds it to its own counters. Once no gap is open,
// Detected = Repaired + Lost + NotOwed over a stream's life.
type Tally struct {
	Detected uint64 // sequences first known missing (or given up before that)
	Repaired uint64 // missing sequences that arrived
	Lost     uint64 // sequences given up
	NotOwed  uint64 // missing sequences a rebase showed were never meant for us
}

// Params are the repair timings.
type Params struct {
	Grace         time.Duration // reordering allowance before the first NACK of new losses
	RetryMin      time.Duration // first re-NACK interval
	RetryMax      time.Duration // re-NACK backoff cap
	RepairTimeout time.Duration // a missing sequence is given up after this long
}

// Stream is one origin's DATA stream as a receiver tracks it: the highest
// sequence below which everything arrived or was given up (cum), the
// highest known to exist (known), and the repair schedule of what lies
// between. It is a pure state machine: no goroutines, no clock (now is the
// caller's monotonic time), no I/O; the caller sends the NACKs and raises
// the Gap events it reports. The zero value is not usable: call Reset.
type Stream struct {
	epoch    uint64
	cum      uint64 // every sequence <= cum arrived or was given up
	known    uint64 // highest sequence known to exist
	win      Window // DATA sequences; bitmap allocated on the first DATA frame
	noticed  *[WindowSize]uint32
	gapSince time.Duration // -1 without an open gap
	lastNack time.Duration // -1: never
	backoff  time.Duration
	nackedTo uint64        // highest sequence already asked for
	newSince time.Duration // when sequences above nackedTo were first noticed missing; -1: none
	lost     Loss
	lostOpen bool
}

// Reset starts epoch with every sequence up to cum taken as done.
func (s *Stream) Reset(epoch, cum uint64) {
	cum = min(cum, MaxSeq)
	s.epoch, s.cum, s.known = epoch, cum, cum
	if s.win.bits != nil {
		s.win.Reset()
	}
	s.win.base, s.win.high = cum+1, 0
	s.gapSince, s.lastNack, s.backoff = -1, -1, 0
	s.nackedTo, s.newSince = cum, -1
	if s.noticed != nil {
		*s.noticed = [WindowSize]uint32{}
	}
}

// Epoch is the epoch tracked; Cum and Known are described on Stream.
func (s *Stream) Epoch() uint64 { return s.epoch }

// Cum is the highest sequence below which everything is settled.
func (s *Stream) Cum() uint64 { return s.cum }

// Known is the highest sequence known to exist.
func (s *Stream) Known() uint64 { return s.known }

// Open reports whether sequences are missing.
func (s *Stream) Open() bool { return s.known > s.cum }

// micros stamps a noticed sequence: microseconds of the caller's clock,
// plus one so that a stamp is never zero (zero means "not noticed"). It
// wraps every 71 minutes; ages stay right for any repair shorter than that.
func micros(d time.Duration) uint32 { return uint32(d/time.Microsecond) + 1 }

func age(now time.Duration, t uint32) time.Duration {
	return time.Duration(micros(now)-t) * time.Microsecond
}

// ensure allocates the DATA window on first use (2 KiB): origins that
// never send DATA cost none.
func (s *Stream) ensure() {
	if s.win.bits == nil {
		base := s.win.base
		s.win = NewWindow(WindowSize)
		s.win.base = base
	}
}

// Observe records DATA sequence seq. The verdict says whether it is new;
// repairedAfter is how long it had been missing when it fills a noticed
// hole (0 otherwise). It does not allocate after the stream's first DATA
// frame and first loss.
func (s *Stream) Observe(seq uint64, now time.Duration, t *Tally) (v Verdict, repairedAfter time.Duration) {
	s.ensure()
	if seq >= s.win.base+WindowSize {
		newBase := seq - WindowSize + 1
		if newBase-1 > s.cum {
			// Missing frames are about to leave the window: give them up.
			s.known = max(s.known, newBase-1)
			s.giveUpThrough(newBase-1, TooOld, now, t)
		}
	}
	if seq > s.known && seq-s.known > 1 {
		s.notice(s.known+1, seq-1, now, t)
	}
	v = s.win.Observe(seq)
	if v == New {
		s.known = max(s.known, seq)
		if s.noticed != nil {
			if n := s.noticed[seq%WindowSize]; n != 0 {
				s.noticed[seq%WindowSize] = 0
				t.Repaired++
				repairedAfter = max(age(now, n), time.Microsecond)
			}
		}
		s.advance(now)
	}
	return v, repairedAfter
}

// notice records when the sequences in [from, to] were first known
// missing. The table (64 KiB) is allocated on the stream's first loss.
func (s *Stream) notice(from, to uint64, now time.Duration, t *Tally) {
	// Only sequences inside the window have a slot; from may lie below it
	// (or have wrapped) after a hostile jump.
	from = max(from, s.win.base)
	to = min(to, s.win.base+WindowSize-1)
	if from > to {
		return
	}
	if s.newSince < 0 {
		s.newSince = now
	}
	if s.noticed == nil {
		s.noticed = new([WindowSize]uint32)
	}
	ns := micros(now)
	for q := from; q <= to; q++ {
		if !s.win.Has(q) && s.noticed[q%WindowSize] == 0 {
			s.noticed[q%WindowSize] = ns
			t.Detected++
		}
	}
}

// Announce records a high-water mark (an HWM frame, or any control frame
// of the origin).
func (s *Stream) Announce(hwm uint64, now time.Duration, t *Tally) {
	hwm = min(hwm, MaxSeq)
	if hwm <= s.known {
		return
	}
	s.ensure()
	s.notice(s.known+1, hwm, now, t)
	s.known = hwm
	if s.known-s.cum > WindowSize {
		s.GiveUpAll(TooOld, now, t)
		return
	}
	s.advance(now)
}

// advance moves cum over contiguous arrivals and opens or closes the gap.
func (s *Stream) advance(now time.Duration) {
	for s.cum < s.known && s.win.Has(s.cum+1) {
		s.cum++
	}
	switch {
	case s.known > s.cum && s.gapSince < 0:
		s.gapSince, s.lastNack, s.backoff = now, -1, -1
	case s.known <= s.cum:
		s.gapSince = -1
	}
}

// GiveUpAll abandons every missing sequence up to known.
func (s *Stream) GiveUpAll(reason Reason, now time.Duration, t *Tally) {
	s.giveUpThrough(s.known, reason, now, t)
}

// giveUpThrough abandons the missing sequences in (cum, last] and moves
// cum past them.
func (s *Stream) giveUpThrough(last uint64, reason Reason, now time.Duration, t *Tally) {
	var missing, first, final, unnoticed uint64
	if b := s.win.base; s.cum+1 < b {
		// Below the window (after a Rebase down): all missing, none
		// noticed, counted without a walk.
		if hi := min(last, b-1); hi > s.cum {
			first, final = s.cum+1, hi
			missing, unnoticed = hi-s.cum, hi-s.cum
		}
	}
	lo := max(s.cum+1, s.win.base)
	top := min(last, s.win.base+WindowSize-1) // bits exist up to here
	for q := lo; q <= top; q++ {
		if !s.win.Has(q) {
			if missing == 0 {
				first = q
			}
			missing++
			final = q
			// Not marked seen: should the original still turn up (it was
			// only late), it is applied, which is harmless after a flush.
			if s.noticed != nil && s.noticed[q%WindowSize] != 0 {
				s.noticed[q%WindowSize] = 0
			} else {
				unnoticed++
			}
		}
	}
	if from := max(lo, top+1); last >= from {
		if missing == 0 {
			first = from
		}
		missing += last - from + 1
		unnoticed += last - from + 1 // beyond the window nothing is noticed
		final = last
	}
	s.cum = max(s.cum, last)
	// Detected counts every sequence known missing once, also those given
	// up before they could be noticed (a jump past the window).
	t.Detected += unnoticed
	s.lose(first, final, missing, reason, t)
	s.advance(now)
}

// GiveUpRange abandons the missing sequences in [first, last] only (the
// origin said they are gone); other missing sequences stay under repair.
// Above cum they are marked settled, so a late copy is then a duplicate.
func (s *Stream) GiveUpRange(first, last uint64, reason Reason, now time.Duration, t *Tally) {
	first = max(first, s.cum+1)
	last = min(last, s.known, s.win.base+WindowSize-1)
	if first > last {
		return
	}
	if first == s.cum+1 {
		s.giveUpThrough(last, reason, now, t)
		return
	}
	var missing, lo, hi uint64
	for q := first; q <= last; q++ {
		if s.win.Has(q) {
			continue
		}
		if missing == 0 {
			lo = q
		}
		missing++
		hi = q
		s.win.Observe(q) // settled
		if s.noticed != nil && s.noticed[q%WindowSize] != 0 {
			s.noticed[q%WindowSize] = 0
		} else {
			t.Detected++
		}
	}
	s.lose(lo, hi, missing, reason, t)
	s.advance(now)
}

// lose adds given-up sequences to the loss run the caller takes next.
func (s *Stream) lose(first, last, missing uint64, reason Reason, t *Tally) {
	if missing == 0 {
		return
	}
	t.Lost += missing
	if !s.lostOpen {
		s.lost = Loss{Epoch: s.epoch, First: first, Last: last, Missing: missing, Reason: reason}
		s.lostOpen = true
		return
	}
	s.lost.First, s.lost.Last = min(s.lost.First, first), max(s.lost.Last, last)
	s.lost.Missing += missing
}

// TakeLoss returns the sequences given up since the last call, as one run
// (one Gap event), and whether there were any.
func (s *Stream) TakeLoss() (Loss, bool) {
	if !s.lostOpen {
		return Loss{}, false
	}
	s.lostOpen = false
	return s.lost, true
}

// Rebase moves the stream's expectation to "everything after cum" (a JOIN
// answer: the origin's fan-out held us from cum+1): down, when frames
// before those seen so far are owed (they are then missing, to be repaired
// or given up); up, when frames noticed missing were never meant for us
// (counted as NotOwed).
func (s *Stream) Rebase(cum uint64, now time.Duration, t *Tally) {
	cum = min(cum, MaxSeq)
	switch {
	case cum > s.cum:
		top := min(cum, s.win.base+WindowSize-1)
		for q := s.cum + 1; q <= top; q++ {
			if !s.win.Has(q) && s.noticed != nil && s.noticed[q%WindowSize] != 0 {
				s.noticed[q%WindowSize] = 0
				t.NotOwed++
			}
		}
		s.cum = cum
		s.known = max(s.known, cum)
		s.nackedTo = max(s.nackedTo, cum)
		if s.win.bits != nil {
			s.win.Slide(cum + 1)
		} else {
			s.win.base = max(s.win.base, cum+1)
		}
		s.advance(now)
	case cum < s.cum:
		s.ensure()
		lo := s.win.Lower(cum + 1)
		s.cum, s.nackedTo = cum, cum
		if lo > cum+1 {
			s.giveUpThrough(lo-1, TooOld, now, t) // more than one window can track
		}
		if s.known > s.cum {
			s.notice(s.cum+1, s.known, now, t)
		}
		s.advance(now)
	}
}

// OldestMissingAge is how long the first missing sequence has been known
// missing: under steady loss a gap never closes as a whole, so deadlines
// apply per sequence.
func (s *Stream) OldestMissingAge(now time.Duration) time.Duration {
	if s.noticed != nil {
		if n := s.noticed[(s.cum+1)%WindowSize]; n != 0 && !s.win.Has(s.cum+1) {
			return age(now, n)
		}
	}
	if s.gapSince < 0 {
		return 0
	}
	return now - s.gapSince
}

// giveUpExpired gives up the missing sequences, from the oldest, that have
// waited RepairTimeout, stopping at the first younger one.
func (s *Stream) giveUpExpired(now time.Duration, limit time.Duration, t *Tally) {
	if s.noticed == nil {
		s.GiveUpAll(Unreachable, now, t)
		return
	}
	last := s.cum
	top := min(s.known, s.win.base+WindowSize-1)
	for q := s.cum + 1; q <= top; q++ {
		if !s.win.Has(q) {
			n := s.noticed[q%WindowSize]
			if n != 0 && age(now, n) < limit {
				break
			}
		}
		last = q
	}
	if last == s.cum {
		last = s.cum + 1 // the oldest has expired: at least it goes
	}
	s.giveUpThrough(last, Unreachable, now, t)
}

// Due runs the repair schedule at now. gone says the origin is beyond
// reach (it left, or is dead and silent). It gives up what has expired
// and returns from which sequences to NACK: fresh is set when newly
// missing sequences have waited the reordering grace, retry when the
// oldest are due to be asked again (0: nothing to ask).
func (s *Stream) Due(now time.Duration, p *Params, gone bool, t *Tally) (fresh, retry uint64) {
	if !s.Open() {
		return 0, 0
	}
	switch {
	case s.OldestMissingAge(now) >= p.RepairTimeout:
		s.giveUpExpired(now, p.RepairTimeout, t)
		return 0, 0
	case gone:
		s.GiveUpAll(OriginDead, now, t)
		return 0, 0
	}
	if s.known > s.nackedTo && (s.newSince < 0 || now-s.newSince >= p.Grace) {
		// Newly missing sequences: ask at once, only for those.
		fresh = max(s.cum, s.nackedTo) + 1
	}
	if s.backoff < 0 {
		s.backoff = p.RetryMin
	}
	if s.lastNack < 0 || now-s.lastNack >= s.backoff {
		// Still missing after a request (a retransmission can be lost
		// too): ask again from the oldest, with backoff. Kept apart from
		// the first requests, which under steady loss never stop and must
		// not starve these.
		s.lastNack = now
		s.backoff = min(2*s.backoff, p.RetryMax)
		retry = s.cum + 1
	}
	return fresh, retry
}

// SeqRange is an inclusive range of sequences.
type SeqRange struct{ First, Last uint64 }

// AppendMissing appends to dst the missing ranges in [from, known], at
// most max of them, and records how far the request speaks for (later
// fresh NACKs start after it). It does not allocate when dst has room.
func (s *Stream) AppendMissing(dst []SeqRange, from uint64, maxRanges int) []SeqRange {
	start := len(dst)
	var cur SeqRange
	covered := s.known // the highest sequence this request speaks for
	for q := from; q <= s.known; q++ {
		if s.win.Has(q) {
			continue
		}
		if cur.First != 0 && cur.Last+1 == q {
			cur.Last = q
			continue
		}
		if cur.First != 0 {
			if len(dst)-start == maxRanges-1 {
				covered = cur.Last // the frame is full: the rest goes in the next
				break
			}
			dst = append(dst, cur)
		}
		cur = SeqRange{First: q, Last: q}
		if q >= s.win.base+WindowSize { // beyond the window all is missing
			cur.Last = s.known
			break
		}
	}
	if cur.First != 0 {
		dst = append(dst, cur)
	}
	if covered >= s.nackedTo {
		s.nackedTo = covered
	}
	if s.nackedTo >= s.known {
		s.newSince = -1
	}
	return dst
}

// NoRoute notes that the origin cannot be asked (no address): nothing is
// requested until new sequences go missing; the timeout flags the rest.
func (s *Stream) NoRoute() { s.nackedTo, s.newSince = s.known, -1 }

// Seen reports whether seq (inside the window) arrived.
func (s *Stream) Seen(seq uint64) bool { return s.win.Has(seq) }

// NoticedAt reports whether seq is recorded as missing (for tests).
func (s *Stream) NoticedAt(seq uint64) bool {
	return s.noticed != nil && seq >= s.win.base && seq < s.win.base+WindowSize && s.noticed[seq%WindowSize] != 0
}
