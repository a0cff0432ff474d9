package ringbuf

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustRecords(t testing.TB, size int) *Records {
	t.Helper()
	r, err := NewRecords(size)
	if err != nil {
		t.Fatalf("NewRecords(%d): %v", size, err)
	}
	return r
}

// fillPayload writes a pattern derived from seq into p, so any corruption,
// truncation or mix-up of records shows up as a mismatch.
func fillPayload(p []byte, seq uint64) {
	for i := range p {
		p[i] = byte(seq*31 + uint64(i)*7 + 1)
	}
}

func TestRecordsSizeValidation(t *testing.T) {
	for _, size := range []int{-256, 0, 8, 128, 255, 300, 1000} {
		_, err := NewRecords(size)
		if !errors.Is(err, ErrCapacity) || !strings.Contains(err.Error(), "size") {
			t.Fatalf("NewRecords(%d) error = %v; want ErrCapacity naming size", size, err)
		}
	}
	r := mustRecords(t, 16384)
	if r.Size() != 16384 || r.MaxPayload() != 16384/8-8 || r.Len() != 0 {
		t.Fatalf("Size %d MaxPayload %d Len %d", r.Size(), r.MaxPayload(), r.Len())
	}
}

func TestRecordsTooLargeAndFull(t *testing.T) {
	r := mustRecords(t, 256) // MaxPayload 24: each full-size record takes 32 bytes
	big := make([]byte, r.MaxPayload()+1)
	if err := r.TryWrite(1, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("TryWrite(%d bytes) = %v, want ErrTooLarge", len(big), err)
	}
	if err := r.Write(testCtx(t), 1, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write(%d bytes) = %v, want ErrTooLarge", len(big), err)
	}
	p := make([]byte, r.MaxPayload())
	for i := range 8 {
		if err := r.TryWrite(uint8(i), p); err != nil {
			t.Fatalf("TryWrite #%d: %v", i, err)
		}
	}
	if r.Len() != 256 {
		t.Fatalf("Len of full ring = %d, want 256", r.Len())
	}
	if err := r.TryWrite(9, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("TryWrite into full ring = %v, want ErrFull", err)
	}
	if n := r.Read(1, func(uint8, []byte) {}); n != 1 {
		t.Fatalf("Read(1) = %d", n)
	}
	if err := r.TryWrite(9, p); err != nil {
		t.Fatalf("TryWrite after freeing a record: %v", err)
	}
}

// TestRecordsPadding walks the exact case where a record does not fit before
// the end of the ring: it needs a padding record, and it must be refused when
// the padding plus the record exceed the free space even though the record
// alone would fit.
func TestRecordsPadding(t *testing.T) {
	r := mustRecords(t, 256)
	write := func(kind uint8, n int) error {
		p := make([]byte, n)
		fillPayload(p, uint64(kind))
		return r.TryWrite(kind, p)
	}
	var got []uint8
	read := func(max int) int {
		return r.Read(max, func(kind uint8, rec []byte) {
			want := make([]byte, len(rec))
			fillPayload(want, uint64(kind))
			if !bytes.Equal(rec, want) {
				t.Fatalf("record kind %d: payload %x, want %x", kind, rec, want)
			}
			got = append(got, kind)
		})
	}
	// 4 empty records (8 bytes each) fill [0,32), six 32-byte records fill
	// [32,224) and a 16-byte record fills [224,240): 16 bytes left at the end.
	kind := uint8(0)
	for _, n := range []int{0, 0, 0, 0, 24, 24, 24, 24, 24, 24, 8} {
		if err := write(kind, n); err != nil {
			t.Fatalf("write kind %d: %v", kind, err)
		}
		kind++
	}
	if n := read(3); n != 3 { // head at 24: 40 bytes free, 16 of them at the end
		t.Fatalf("read(3) = %d", n)
	}
	// A 32-byte record needs 16 bytes of padding + 32 at the start, but only
	// [0,24) is free at the start.
	if err := write(kind, 24); !errors.Is(err, ErrFull) {
		t.Fatalf("write needing padding into 40 free bytes = %v, want ErrFull", err)
	}
	if n := read(1); n != 1 { // head at 32: now [0,32) is free
		t.Fatalf("read(1) = %d", n)
	}
	if err := write(kind, 24); err != nil {
		t.Fatalf("write with padding: %v", err)
	}
	kind++
	if r.Len() != 256 {
		t.Fatalf("Len = %d, want 256 (208 used + 16 padding + 32)", r.Len())
	}
	if h := r.words[240/8]; h&headerPadding == 0 || h&headerLenMask != 16 {
		t.Fatalf("header at 240 = %#x, want a 16-byte padding record", h)
	}
	if n := read(100); n != 8 {
		t.Fatalf("read(100) = %d, want 8 (padding is not a record)", n)
	}
	for i, k := range got {
		if k != uint8(i) {
			t.Fatalf("records read in order %v", got)
		}
	}
	if len(got) != int(kind) || r.Len() != 0 {
		t.Fatalf("read %d of %d records, Len %d", len(got), kind, r.Len())
	}
	for i, w := range r.words {
		if w != 0 {
			t.Fatalf("word %d = %#x after draining; freed space must be zero", i, w)
		}
	}
}

// TestRecordsMixedSizesWrap pushes records of every size from 1 to 1024
// bytes through a 16 KiB ring hundreds of times around, interleaving writes
// until full with reads of random batch sizes, and checks every byte.
func TestRecordsMixedSizesWrap(t *testing.T) {
	r := mustRecords(t, 16384)
	rng := rand.New(rand.NewPCG(1, 2))
	var buf [1024]byte
	var written, read uint64
	var pendingLens []int // lengths of records written and not yet read, FIFO
	wantBytes := 0
	total := 20000
	if raceEnabled {
		total = 5000
	}
	for read < uint64(total) {
		for written < uint64(total) {
			n := 1 + rng.IntN(1024)
			p := buf[:n]
			fillPayload(p, written)
			err := r.TryWrite(uint8(written), p)
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatalf("TryWrite(%d bytes): %v", n, err)
			}
			pendingLens = append(pendingLens, n)
			wantBytes += n
			written++
		}
		if r.Len() > r.Size() {
			t.Fatalf("Len %d > Size %d", r.Len(), r.Size())
		}
		got := r.Read(1+rng.IntN(16), func(kind uint8, rec []byte) {
			if kind != uint8(read) || len(rec) != pendingLens[0] {
				t.Fatalf("record %d: kind %d len %d, want kind %d len %d", read, kind, len(rec), uint8(read), pendingLens[0])
			}
			if cap(rec) != len(rec) {
				t.Fatalf("record view has cap %d > len %d: fn could append into the ring", cap(rec), len(rec))
			}
			want := buf[:len(rec)]
			fillPayload(want, read)
			if !bytes.Equal(rec, want) {
				t.Fatalf("record %d payload corrupted", read)
			}
			wantBytes -= len(rec)
			pendingLens = pendingLens[1:]
			read++
		})
		if got == 0 && written > read {
			t.Fatalf("Read returned 0 with %d records pending", written-read)
		}
	}
	if wantBytes != 0 || r.Len() != 0 {
		t.Fatalf("left %d payload bytes, Len %d", wantBytes, r.Len())
	}
	if laps := written * 512 / 16384; laps < 100 {
		t.Fatalf("only ~%d laps around the ring", laps)
	}
}

func TestRecordsClose(t *testing.T) {
	ctx := testCtx(t)
	r := mustRecords(t, 256)
	if err := r.Write(ctx, 7, []byte("key")); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close()
	if err := r.TryWrite(1, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryWrite after Close = %v", err)
	}
	if err := r.Write(ctx, 1, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("Wait with a record left = %v", err)
	}
	n := r.Read(10, func(kind uint8, rec []byte) {
		if kind != 7 || string(rec) != "key" {
			t.Fatalf("got %d %q", kind, rec)
		}
	})
	if n != 1 {
		t.Fatalf("Read = %d", n)
	}
	if err := r.Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait on closed, drained ring = %v", err)
	}
}

func TestRecordsCloseAndCancelWakeWaiters(t *testing.T) {
	ctx := testCtx(t)
	r := mustRecords(t, 256)
	p := make([]byte, r.MaxPayload())
	for r.TryWrite(0, p) == nil {
	}
	cctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, 2)
	go func() { errs <- r.Write(cctx, 1, p) }()
	waitParked(t, func() bool { return r.notFull.waiters.Load() == 1 })
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after cancel = %v", err)
	}
	go func() { errs <- r.Write(ctx, 1, p) }()
	waitParked(t, func() bool { return r.notFull.waiters.Load() == 1 })
	r.Close()
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("Write woken by Close = %v", err)
	}

	empty := mustRecords(t, 256)
	go func() { errs <- empty.Wait(ctx) }()
	waitParked(t, func() bool { return empty.notEmpty.waiters.Load() == 1 })
	empty.Close()
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait woken by Close = %v", err)
	}
}

// TestRecordsWaitSeesPastPadding checks that a padding record alone is not
// reported as ready, and that a record after it is.
func TestRecordsWaitSeesPastPadding(t *testing.T) {
	r := mustRecords(t, 256)
	p := make([]byte, 24)
	for range 7 {
		if err := r.TryWrite(0, p); err != nil {
			t.Fatal(err)
		}
	}
	r.Read(7, func(uint8, []byte) {})
	if err := r.TryWrite(0, p[:8]); err != nil { // [224,240)
		t.Fatal(err)
	}
	r.Read(1, func(uint8, []byte) {})
	// Hand-place a padding record the way claim does, without a record after it.
	r.tail.Add(16)
	r.words[240/8] = 16 | headerPadding
	if r.ready() {
		t.Fatal("ready() with only a padding record")
	}
	if err := r.TryWrite(3, p[:4]); err != nil {
		t.Fatal(err)
	}
	if !r.ready() {
		t.Fatal("ready() false with a record after the padding")
	}
	if n := r.Read(4, func(kind uint8, rec []byte) {
		if kind != 3 || len(rec) != 4 {
			t.Fatalf("got kind %d len %d", kind, len(rec))
		}
	}); n != 1 {
		t.Fatalf("Read = %d", n)
	}
}
