package stream

// Window is an exact bitmap of which sequences in [Base, Base+size) were
// seen. Sequences below Base are "below the window": the caller decides
// about them some other way (the engine's bloom filter). Two sizes exist:
// a DATA window of WindowSize sequences (2 KiB) and a control-frame
// replay window of ReplaySize packet numbers (128 B).
type Window struct {
	base uint64 // lowest sequence still tracked
	high uint64 // highest sequence seen (0: none)
	bits []uint64
}

// Verdict is what a Window says of an observed sequence.
type Verdict uint8

// Verdicts.
const (
	New         Verdict = iota // first time seen: recorded
	Duplicate                  // seen before
	BelowWindow                // older than the window: unknown
)

// NewWindow returns a window of size sequences (a power of two, at least
// 64) starting at sequence 1. It allocates the bitmap.
func NewWindow(size int) Window {
	return Window{base: 1, bits: make([]uint64, size/64)}
}

func (w *Window) size() uint64 { return uint64(len(w.bits)) * 64 }

// Reset forgets everything; the window starts at sequence 1 again.
func (w *Window) Reset() {
	clear(w.bits)
	w.base, w.high = 1, 0
}

// Base is the lowest sequence tracked; High the highest seen (0: none).
func (w *Window) Base() uint64 { return w.base }

// High is the highest sequence observed, 0 before any.
func (w *Window) High() uint64 { return w.high }

// Observe records seq and says whether it is new. A sequence beyond the
// window slides it forward, forgetting the oldest. It does not allocate.
func (w *Window) Observe(seq uint64) Verdict {
	if seq < w.base {
		return BelowWindow
	}
	if seq >= w.base+w.size() {
		w.Slide(seq - w.size() + 1)
	}
	i := seq % w.size()
	m := uint64(1) << (i % 64)
	if w.bits[i/64]&m != 0 {
		return Duplicate
	}
	w.bits[i/64] |= m
	if seq > w.high {
		w.high = seq
	}
	return New
}

// Has reports whether seq, inside the window, was seen.
func (w *Window) Has(seq uint64) bool {
	if seq < w.base || seq >= w.base+w.size() {
		return false
	}
	i := seq % w.size()
	return w.bits[i/64]&(uint64(1)<<(i%64)) != 0
}

// Slide moves the base up to newBase, forgetting what falls out.
func (w *Window) Slide(newBase uint64) {
	if newBase <= w.base {
		return
	}
	if newBase-w.base >= w.size() {
		clear(w.bits)
	} else {
		for s := w.base; s < newBase; s++ {
			i := s % w.size()
			w.bits[i/64] &^= uint64(1) << (i % 64)
		}
	}
	w.base = newBase
}

// Lower moves the base down to newBase when everything seen still fits
// above it, and returns the base it could reach: the slots of [newBase,
// base) belong to sequences above High, which were never seen, so they
// are already clear.
func (w *Window) Lower(newBase uint64) uint64 {
	if newBase >= w.base {
		return w.base
	}
	if w.high >= newBase+w.size() {
		newBase = w.high - w.size() + 1
	}
	if newBase < w.base {
		w.base = newBase
	}
	return w.base
}
