package codec

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	tests := []Header{
		{Type: TypeData, Flags: FlagAuth | FlagRetransmit, Hops: 3, HopLimit: 4, Cluster: 1, Origin: 2, Epoch: 3, Seq: 4, Packet: 5, Count: 0, PayloadLen: 0},
		{Type: TypeAlive, Hops: 255, HopLimit: 255, Cluster: ^uint64(0), Origin: ^uint64(0), Epoch: ^uint64(0), Seq: ^uint64(0), Packet: ^uint64(0), Count: 7, PayloadLen: 300},
		{Type: TypeHWM},
	}
	for _, h := range tests {
		b := AppendHeader([]byte{0xEE}, &h) // appends after existing bytes
		if len(b) != 1+HeaderLen || b[0] != 0xEE {
			t.Fatalf("AppendHeader wrote %d bytes or clobbered dst", len(b)-1)
		}
		frame := append(b[1:], make([]byte, FrameLen(&h)-HeaderLen)...)
		got, n, err := ParseHeader(frame)
		if err != nil || n != HeaderLen || got != h {
			t.Fatalf("ParseHeader = %+v, %d, %v; want %+v", got, n, err, h)
		}
	}
}

func TestFrameTypeAndStateStrings(t *testing.T) {
	for v, want := range map[FrameType]string{TypeData: "DATA", TypeAlive: "ALIVE", TypeLeave: "LEAVE", TypeNack: "NACK", TypeHWM: "HWM", TypeAck: "ACK", TypeChallenge: "CHALLENGE", TypeResponse: "RESPONSE", TypeJoin: "JOIN", TypeProbe: "PROBE", TypeSync: "SYNC", TypeIHave: "IHAVE", TypeGraft: "GRAFT", TypePrune: "PRUNE", 15: "FrameType(15)", 0: "FrameType(0)", 200: "FrameType(200)"} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(v), v.String(), want)
		}
	}
	for v, want := range map[MemberState]string{StateAlive: "alive", StateSuspect: "suspect", StateDead: "dead", StateLeft: "left", 9: "MemberState(9)"} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(v), v.String(), want)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		key   []byte
		flags RecordFlags
	}{
		{[]byte("k"), RecordExact},
		{[]byte("tenant/7/"), RecordPrefix},
		{bytes.Repeat([]byte{0xFF}, MaxKeyLen), RecordExact},
	} {
		b := AppendRecord(nil, tt.key, tt.flags)
		if len(b) != RecordLen(len(tt.key)) {
			t.Fatalf("len %d, want %d", len(b), RecordLen(len(tt.key)))
		}
		b = append(b, "next"...) // a following record must not leak into the key
		r, n, err := ParseRecord(b)
		if err != nil || n != RecordLen(len(tt.key)) || !bytes.Equal(r.Key, tt.key) || r.Flags != tt.flags || r.Hash != xxhashOf(string(tt.key)) {
			t.Fatalf("ParseRecord = %+v, %d, %v", r, n, err)
		}
		if cap(r.Key) != len(r.Key) {
			t.Fatalf("key view cap %d > len %d: appending would overwrite the frame", cap(r.Key), len(r.Key))
		}
	}
}

func TestAddrRoundTrip(t *testing.T) {
	for _, ap := range []netip.AddrPort{
		{}, // "no address"
		netip.MustParseAddrPort("127.0.0.1:1"),
		netip.MustParseAddrPort("10.1.2.3:65535"),
		netip.MustParseAddrPort("[::1]:7946"),
		netip.MustParseAddrPort("[2001:db8::42]:7946"),
		netip.MustParseAddrPort("[::2.3.4.5]:9"), // IPv4-compatible stays IPv6
	} {
		b := AppendAddr(nil, ap)
		if len(b) != AddrLen {
			t.Fatalf("%v: %d bytes", ap, len(b))
		}
		got, n, err := ParseAddr(b)
		if err != nil || n != AddrLen || got != ap {
			t.Fatalf("ParseAddr(AppendAddr(%v)) = %v, %d, %v", ap, got, n, err)
		}
	}
	// A zone cannot be carried; it is dropped.
	got, _, err := ParseAddr(AppendAddr(nil, netip.MustParseAddrPort("[fe80::1%eth0]:5")))
	if err != nil || got != netip.MustParseAddrPort("[fe80::1]:5") {
		t.Fatalf("zoned addr = %v, %v", got, err)
	}
}

func TestAliveRoundTrip(t *testing.T) {
	frame := goldenFrames()["alive"]
	f, err := ParseFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.Type != TypeAlive || int(f.Header.Count) != len(testDigest) || len(f.Payload) != AlivePayloadLen(len(testDigest)) {
		t.Fatalf("header %+v", f.Header)
	}
	a, n, err := ParseAlive(f.Payload)
	if err != nil || (a != Alive{Incarnation: 5, HWM: 41, Addr: testAddr4}) || !a.Addr.Addr().Is4() {
		t.Fatalf("ParseAlive = %+v, %v", a, err)
	}
	for i, want := range testDigest {
		e, m, err := ParseDigestEntry(f.Payload[n:])
		if err != nil || e != want {
			t.Fatalf("entry %d = %+v, %v; want %+v", i, e, err, want)
		}
		n += m
	}
}

func TestNackLeaveHWMRoundTrip(t *testing.T) {
	g := goldenFrames()
	f, err := ParseFrame(g["nack"])
	if err != nil {
		t.Fatal(err)
	}
	nk, n, err := ParseNack(f.Payload)
	if err != nil || nk != (Nack{Origin: 0xC1, Epoch: 0xD1}) || len(f.Payload) != NackPayloadLen(len(testRanges)) {
		t.Fatalf("ParseNack = %+v, %v", nk, err)
	}
	for i, want := range testRanges {
		r, m, err := ParseSeqRange(f.Payload[n:])
		if err != nil || r != want {
			t.Fatalf("range %d = %+v, %v", i, r, err)
		}
		n += m
	}
	f, err = ParseFrame(g["leave"])
	if err != nil {
		t.Fatal(err)
	}
	if inc, n, err := ParseLeave(f.Payload); err != nil || inc != 6 || n != LeaveLen {
		t.Fatalf("ParseLeave = %d, %d, %v", inc, n, err)
	}
	f, err = ParseFrame(g["hwm"])
	if err != nil || f.Header.Seq != 1234 || len(f.Payload) != 0 || f.Tag != nil {
		t.Fatalf("HWM = %+v, %v", f, err)
	}
}

func TestAuthFrame(t *testing.T) {
	frame := goldenFrames()["data_auth"]
	f, err := ParseFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Tag, testTag) || FrameLen(&f.Header) != len(frame) {
		t.Fatalf("tag %x, FrameLen %d, len %d", f.Tag, FrameLen(&f.Header), len(frame))
	}
	it := NewRecordIter(f.Payload, f.Header.Count)
	if r, ok := it.Next(); !ok || string(r.Key) != "user:7" {
		t.Fatalf("record %q", r.Key)
	}
}

func TestHopsAndAAD(t *testing.T) {
	frame := bytes.Clone(goldenFrames()["data_auth"])
	var before [HeaderLen]byte
	HeaderAAD(&before, frame)
	SetHops(frame, 3)
	h, _, err := ParseHeader(frame)
	if err != nil || h.Hops != 3 {
		t.Fatalf("hops %d, %v", h.Hops, err)
	}
	var after [HeaderLen]byte
	HeaderAAD(&after, frame)
	if before != after {
		t.Fatal("AAD changed with hops")
	}
	if after[offHops] != 0 || !bytes.Equal(after[offHopLimit:], frame[offHopLimit:HeaderLen]) {
		t.Fatal("AAD is not the header with hops zeroed")
	}
	aad := AppendAAD([]byte("x"), frame)
	if !bytes.Equal(aad[1:], after[:]) {
		t.Fatal("AppendAAD differs from HeaderAAD")
	}
	frame[offSeq]++ // any other header byte is covered
	HeaderAAD(&after, frame)
	if before == after {
		t.Fatal("AAD ignores the seq")
	}
	SetHops(frame[:HeaderLen-1], 9) // short: untouched, no panic
	var short [HeaderLen]byte
	HeaderAAD(&short, frame[:10])
	if short[offHops] != 0 || short[HeaderLen-1] != 0 {
		t.Fatal("HeaderAAD of a short frame")
	}
}

func TestFinishFrame(t *testing.T) {
	b := AppendHeader(nil, &Header{Type: TypeLeave, Count: 99, PayloadLen: 99})
	b = AppendLeave(b, 1)
	if err := FinishFrame(b, 0); err != nil {
		t.Fatal(err)
	}
	if f, err := ParseFrame(b); err != nil || f.Header.PayloadLen != LeaveLen || f.Header.Count != 0 {
		t.Fatalf("%+v, %v", f.Header, err)
	}
}

func TestCapacityHelpers(t *testing.T) {
	for _, size := range []int{MinFrameSize, DefaultMaxFrameSize, MaxFrameSize} {
		for _, auth := range []bool{false, true} {
			tag := 0
			if auth {
				tag = TagLen
			}
			n := MaxDigestEntries(size, auth)
			if HeaderLen+AlivePayloadLen(n)+tag > size || HeaderLen+AlivePayloadLen(n+1)+tag <= size {
				t.Errorf("MaxDigestEntries(%d, %v) = %d is not the maximum", size, auth, n)
			}
			r := MaxNackRanges(size, auth)
			if HeaderLen+NackPayloadLen(r)+tag > size || HeaderLen+NackPayloadLen(r+1)+tag <= size {
				t.Errorf("MaxNackRanges(%d, %v) = %d is not the maximum", size, auth, r)
			}
		}
	}
	if MaxDigestEntries(MinFrameSize, true) != 25 {
		t.Errorf("MaxDigestEntries(MinFrameSize, true) = %d", MaxDigestEntries(MinFrameSize, true))
	}
	if MaxDigestEntries(10, false) != 0 || MaxNackRanges(10, true) != 0 {
		t.Error("capacity of a tiny budget is not 0")
	}
}

func TestChallengeRoundTrip(t *testing.T) {
	for _, c := range []Challenge{
		testChallenge,
		{Time: ^uint64(0), Addr: testAddr6, Cookie: [CookieLen]byte{1, 2, 3}},
	} {
		b := AppendChallenge([]byte{0xEE}, &c)
		if len(b) != 1+ChallengeLen || b[0] != 0xEE {
			t.Fatalf("AppendChallenge wrote %d bytes or clobbered dst", len(b)-1)
		}
		got, n, err := ParseChallenge(b[1:])
		if err != nil || n != ChallengeLen || got != c {
			t.Fatalf("ParseChallenge = %+v, %d, %v; want %+v", got, n, err, c)
		}
		for _, typ := range []FrameType{TypeChallenge, TypeResponse} {
			f, err := ParseFrame(payloadFrame(testHeader, typ, 0, b[1:]))
			if err != nil || f.Header.Type != typ || !bytes.Equal(f.Payload, b[1:]) {
				t.Fatalf("ParseFrame(%v) = %+v, %v", typ, f, err)
			}
		}
	}
}
