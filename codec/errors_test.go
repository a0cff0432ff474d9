package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
)

// allErrors lists every sentinel; TestErrorReasons proves each reachable.
var allErrors = []error{
	ErrShort, ErrBadMagic, ErrBadVersion, ErrBadHeaderLen, ErrBadType, ErrBadFlags,
	ErrReserved, ErrBadLength, ErrTooManyRecords, ErrEmptyKey, ErrKeyTooLong,
	ErrBadRecordFlags, ErrBadHash, ErrBadAddr, ErrBadRange, ErrBadState,
	ErrFrameTooLarge, ErrFrameTooSmall,
}

func TestErrorText(t *testing.T) {
	for _, err := range allErrors {
		if !strings.HasPrefix(err.Error(), "codec: ") {
			t.Errorf("%q does not start with \"codec: \"", err)
		}
	}
}

// Helpers that edit an encoded frame or structure in place.
func put8(off int, v uint8) func([]byte) []byte {
	return func(b []byte) []byte { b[off] = v; return b }
}
func put16(off int, v uint16) func([]byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
}
func put64(off int, v uint64) func([]byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b }
}
func parseFrame(b []byte) error { _, err := ParseFrame(b); return err }
func parseAddr(b []byte) error  { _, _, err := ParseAddr(b); return err }

// addrBytes encodes ip (16-byte form) and port without AppendAddr's checks.
func addrBytes(ip string, port uint16) []byte {
	a := netip.MustParseAddr(ip).As16()
	return binary.BigEndian.AppendUint16(a[:], port)
}

func TestErrorReasons(t *testing.T) {
	g := goldenFrames()
	data, alive, leave, nack, hwm := g["data"], g["alive"], g["leave"], g["nack"], g["hwm"]
	challenge, response := g["challenge"], g["response"]
	chP := challenge[HeaderLen:]
	rec := AppendRecord(nil, []byte("user:42"), RecordExact)
	aliveP := alive[HeaderLen:]
	entry := aliveP[AliveFixedLen : AliveFixedLen+DigestEntryLen]
	nackP := nack[HeaderLen:]
	rng := nackP[NackFixedLen : NackFixedLen+SeqRangeLen]
	longKey := make([]byte, MaxKeyLen+1)

	tests := []struct {
		name string
		err  error
		want error
	}{
		// Header.
		{"header short", parseFrame(data[:HeaderLen-1]), ErrShort},
		{"header empty", parseFrame(nil), ErrShort},
		{"bad magic", parseFrame(mutate(data, put16(offMagic, 0x4D57))), ErrBadMagic},
		{"bad version 0", parseFrame(mutate(data, put8(offVersion, 0))), ErrBadVersion},
		{"bad version 2", parseFrame(mutate(data, put8(offVersion, 2))), ErrBadVersion},
		{"bad header len", parseFrame(mutate(data, put8(offHeaderLen, HeaderLen+8))), ErrBadHeaderLen},
		{"type 0", parseFrame(mutate(data, put8(offType, 0))), ErrBadType},
		{"type above last", parseFrame(mutate(data, put8(offType, byte(typeLast+1)))), ErrBadType},
		{"undefined flag bit", parseFrame(mutate(data, put8(offFlags, 1<<3))), ErrBadFlags},
		{"non-zero padding", parseFrame(append(mutate(data, put8(offFlags, byte(FlagPadded))), 0, 1)), ErrBadLength},
		{"padding without the flag", parseFrame(append(append([]byte(nil), data...), 0)), ErrBadLength},
		{"retransmit on ALIVE", parseFrame(mutate(alive, put8(offFlags, uint8(FlagRetransmit)))), ErrBadFlags},
		{"retransmit on HWM", parseFrame(mutate(hwm, put8(offFlags, uint8(FlagRetransmit)))), ErrBadFlags},
		{"header reserved", parseFrame(mutate(data, put8(offReserved+3, 1))), ErrReserved},
		{"frame too large", parseFrame(mutate(data, put16(offPayloadLen, math.MaxUint16))), ErrFrameTooLarge},
		{"truncated payload", parseFrame(data[:len(data)-1]), ErrBadLength},
		{"trailing byte", parseFrame(append(data[:len(data):len(data)], 0)), ErrBadLength},
		{"auth flag without tag", parseFrame(mutate(data, put8(offFlags, uint8(FlagAuth)))), ErrBadLength},
		{"payload len mismatch", ValidatePayload(&Header{Type: TypeHWM, PayloadLen: 1}, nil), ErrBadLength},
		{"unknown type payload", ValidatePayload(&Header{Type: 200}, nil), ErrBadType},

		// Records.
		{"record short header", func() error { _, _, err := ParseRecord(rec[:RecordHeaderLen-1]); return err }(), ErrShort},
		{"record short key", func() error { _, _, err := ParseRecord(rec[:len(rec)-1]); return err }(), ErrShort},
		{"record empty key", func() error { _, _, err := ParseRecord(mutate(rec, put16(offRecKeyLen, 0))); return err }(), ErrEmptyKey},
		{"record key too long", func() error {
			_, _, err := ParseRecord(mutate(rec, put16(offRecKeyLen, MaxKeyLen+1)))
			return err
		}(), ErrKeyTooLong},
		{"record no flag", func() error { _, _, err := ParseRecord(mutate(rec, put8(offRecFlags, 0))); return err }(), ErrBadRecordFlags},
		{"record both flags", func() error {
			_, _, err := ParseRecord(mutate(rec, put8(offRecFlags, uint8(RecordExact|RecordPrefix))))
			return err
		}(), ErrBadRecordFlags},
		{"record undefined flag", func() error { _, _, err := ParseRecord(mutate(rec, put8(offRecFlags, 1<<2|1))); return err }(), ErrBadRecordFlags},
		{"record reserved", func() error { _, _, err := ParseRecord(mutate(rec, put8(offRecReserved, 1))); return err }(), ErrReserved},
		{"record bad hash", func() error { _, _, err := ParseRecord(mutate(rec, put8(offRecHash, ^rec[offRecHash]))); return err }(), ErrBadHash},
		{"record key bit flip", func() error { _, _, err := ParseRecord(mutate(rec, put8(offRecKey, 'U'))); return err }(), ErrBadHash},
		{"validate empty key", ValidateKey(nil), ErrEmptyKey},
		{"validate long key", ValidateKey(longKey), ErrKeyTooLong},
		{"DATA count 0", parseFrame(mutate(data, put16(offCount, 0))), ErrBadLength},
		{"DATA count beyond payload", parseFrame(mutate(data, put16(offCount, 100))), ErrTooManyRecords},
		{"DATA count one too many", ValidateRecords(AppendRecord(nil, make30(), RecordExact), 3), ErrTooManyRecords},
		{"DATA trailing record", parseFrame(mutate(data, put16(offCount, 1))), ErrBadLength},
		{"DATA record error surfaces", parseFrame(mutate(data, put8(HeaderLen+offRecReserved, 1))), ErrReserved},

		// Addresses.
		{"addr short", parseAddr(make([]byte, AddrLen-1)), ErrShort},
		{"addr port 0", parseAddr(addrBytes("192.0.2.1", 0)), ErrBadAddr},
		{"addr v4 unspecified", parseAddr(addrBytes("0.0.0.0", 7946)), ErrBadAddr},
		{"addr v6 unspecified", parseAddr(addrBytes("::", 7946)), ErrBadAddr},
		{"addr v4 multicast", parseAddr(addrBytes("239.0.0.1", 7946)), ErrBadAddr},
		{"addr v6 multicast", parseAddr(addrBytes("ff02::1", 7946)), ErrBadAddr},
		{"addr v4 broadcast", parseAddr(addrBytes("255.255.255.255", 7946)), ErrBadAddr},

		// ALIVE.
		{"alive short", func() error { _, _, err := ParseAlive(aliveP[:AliveFixedLen-1]); return err }(), ErrShort},
		{"alive bad addr", func() error {
			_, _, err := ParseAlive(mutate(aliveP, put16(offAliveAddr+offAddrPort, 0)))
			return err
		}(), ErrBadAddr},
		{"alive reserved", func() error { _, _, err := ParseAlive(mutate(aliveP, put16(offAliveReserved, 1))); return err }(), ErrReserved},
		{"digest short", func() error { _, _, err := ParseDigestEntry(entry[:DigestEntryLen-1]); return err }(), ErrShort},
		{"digest bad addr", func() error {
			_, _, err := ParseDigestEntry(mutate(entry, put16(offDigestAddr+offAddrPort, 0)))
			return err
		}(), ErrBadAddr},
		{"digest state 0", func() error { _, _, err := ParseDigestEntry(mutate(entry, put8(offDigestState, 0))); return err }(), ErrBadState},
		{"digest state 5", func() error { _, _, err := ParseDigestEntry(mutate(entry, put8(offDigestState, 5))); return err }(), ErrBadState},
		{"digest reserved", func() error { _, _, err := ParseDigestEntry(mutate(entry, put8(offDigestReserved, 1))); return err }(), ErrReserved},
		{"ALIVE frame too short for fixed part", parseFrame(payloadFrame(testHeader, TypeAlive, 0, make([]byte, AliveFixedLen-1))), ErrShort},
		{"ALIVE count too many", parseFrame(mutate(alive, put16(offCount, 3))), ErrTooManyRecords},
		{"ALIVE leftover entry", parseFrame(mutate(alive, put16(offCount, 1))), ErrBadLength},
		{"ALIVE bad entry", parseFrame(mutate(alive, put8(HeaderLen+AliveFixedLen+DigestEntryLen+offDigestState, 7))), ErrBadState},

		// LEAVE.
		{"leave short", func() error { _, _, err := ParseLeave(make([]byte, LeaveLen-1)); return err }(), ErrShort},
		{"LEAVE count", parseFrame(mutate(leave, put16(offCount, 1))), ErrTooManyRecords},
		{"LEAVE frame short", parseFrame(payloadFrame(testHeader, TypeLeave, 0, make([]byte, LeaveLen-1))), ErrShort},
		{"LEAVE frame long", parseFrame(payloadFrame(testHeader, TypeLeave, 0, make([]byte, LeaveLen+1))), ErrBadLength},

		// NACK.
		{"nack short", func() error { _, _, err := ParseNack(nackP[:NackFixedLen-1]); return err }(), ErrShort},
		{"range short", func() error { _, _, err := ParseSeqRange(rng[:SeqRangeLen-1]); return err }(), ErrShort},
		{"range first 0", func() error { _, _, err := ParseSeqRange(mutate(rng, put64(offRangeFirst, 0))); return err }(), ErrBadRange},
		{"range first > last", func() error { _, _, err := ParseSeqRange(mutate(rng, put64(offRangeFirst, 6))); return err }(), ErrBadRange},
		{"NACK no range", parseFrame(payloadFrame(testHeader, TypeNack, 0, nackP[:NackFixedLen])), ErrBadRange},
		{"NACK frame short", parseFrame(payloadFrame(testHeader, TypeNack, 1, nackP[:NackFixedLen-1])), ErrShort},
		{"NACK count too many", parseFrame(mutate(nack, put16(offCount, 3))), ErrTooManyRecords},
		{"NACK leftover range", parseFrame(mutate(nack, put16(offCount, 1))), ErrBadLength},
		{"NACK bad range", parseFrame(mutate(nack, put64(HeaderLen+NackFixedLen+offRangeLast, 1))), ErrBadRange},

		// HWM.
		{"HWM count", parseFrame(mutate(hwm, put16(offCount, 1))), ErrTooManyRecords},
		{"HWM payload", parseFrame(payloadFrame(testHeader, TypeHWM, 0, []byte{0})), ErrBadLength},

		// CHALLENGE and RESPONSE.
		{"type 15", parseFrame(mutate(data, put8(offType, 15))), ErrBadType},
		{"challenge short", func() error { _, _, err := ParseChallenge(chP[:ChallengeLen-1]); return err }(), ErrShort},
		{"challenge no address", func() error {
			_, _, err := ParseChallenge(mutate(chP, func(b []byte) []byte { clear(b[offChallengeAddr : offChallengeAddr+AddrLen]); return b }))
			return err
		}(), ErrBadAddr},
		{"challenge multicast address", func() error {
			_, _, err := ParseChallenge(mutate(chP, func(b []byte) []byte { copy(b[offChallengeAddr:], addrBytes("239.0.0.1", 7946)); return b }))
			return err
		}(), ErrBadAddr},
		{"challenge reserved", func() error { _, _, err := ParseChallenge(mutate(chP, put16(offChallengeReserved, 1))); return err }(), ErrReserved},
		{"CHALLENGE count", parseFrame(mutate(challenge, put16(offCount, 1))), ErrTooManyRecords},
		{"RESPONSE count", parseFrame(mutate(response, put16(offCount, 1))), ErrTooManyRecords},
		{"CHALLENGE frame short", parseFrame(payloadFrame(testHeader, TypeChallenge, 0, chP[:ChallengeLen-1])), ErrShort},
		{"RESPONSE frame long", parseFrame(payloadFrame(testHeader, TypeResponse, 0, append(bytes.Clone(chP), 0))), ErrBadLength},
		{"retransmit on CHALLENGE", parseFrame(mutate(challenge, put8(offFlags, uint8(FlagRetransmit)))), ErrBadFlags},

		// Sizes.
		{"frame size too small", ValidateFrameSize(MinFrameSize - 1), ErrFrameTooSmall},
		{"frame size too large", ValidateFrameSize(MaxFrameSize + 1), ErrFrameTooLarge},
		{"finish short", FinishFrame(make([]byte, HeaderLen-1), 0), ErrShort},
		{"finish too large", FinishFrame(append(AppendHeader(nil, &testHeader), make([]byte, MaxFrameSize-HeaderLen+1)...), 0), ErrFrameTooLarge},
		{"finish too large with tag", FinishFrame(append(AppendHeader(nil, &Header{Flags: FlagAuth}), make([]byte, MaxFrameSize-HeaderLen-TagLen+1)...), 0), ErrFrameTooLarge},
	}
	reached := map[error]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != tt.want { // sentinels are returned bare
				t.Fatalf("got %v, want %v", tt.err, tt.want)
			}
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("errors.Is(%v, %v) = false", tt.err, tt.want)
			}
		})
		reached[tt.want] = true
	}
	for _, err := range allErrors {
		if !reached[err] {
			t.Errorf("no test reaches %v", err)
		}
	}
}

func make30() []byte { return []byte("012345678901234567890123456789") }

func TestValidSizes(t *testing.T) {
	for _, n := range []int{MinFrameSize, DefaultMaxFrameSize, MaxFrameSize} {
		if err := ValidateFrameSize(n); err != nil {
			t.Errorf("ValidateFrameSize(%d) = %v", n, err)
		}
	}
	if err := ValidateKey(make([]byte, MaxKeyLen)); err != nil {
		t.Errorf("ValidateKey(MaxKeyLen bytes) = %v", err)
	}
	if HeaderLen+RecordLen(MaxKeyLen)+TagLen > MinFrameSize {
		t.Error("MinFrameSize does not fit a max-length key record with header and tag")
	}
}

// TestRecordIterStopsAtError checks the iterator yields the good records
// before a bad one, then reports the error.
func TestRecordIterStopsAtError(t *testing.T) {
	p := AppendRecord(nil, []byte("a"), RecordExact)
	p = AppendRecord(p, []byte("b"), RecordPrefix)
	p[len(p)-1] = 'c' // second record's hash no longer matches
	it := NewRecordIter(p, 2)
	r, ok := it.Next()
	if !ok || string(r.Key) != "a" {
		t.Fatalf("first Next = %q, %v", r.Key, ok)
	}
	if _, ok := it.Next(); ok {
		t.Fatal("second Next ok on a bad record")
	}
	if it.Err() != ErrBadHash {
		t.Fatalf("Err = %v, want ErrBadHash", it.Err())
	}
	if _, ok := it.Next(); ok || it.Err() != ErrBadHash {
		t.Fatal("iterator resumed after an error")
	}
}
