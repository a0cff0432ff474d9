package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

var testUpdates = []Update{
	{ID: 0xA1, Epoch: 0xB1, Incarnation: 3, Addr: testAddr4, State: StateAlive, From: 0xC1},
	{ID: 0xA2, Epoch: 0xB2, Incarnation: 9, Addr: testAddr6, State: StateSuspect, From: 0xC2},
}

func probeFrame(p Probe, ups []Update) []byte {
	b := AppendProbe(nil, &p)
	for i := range ups {
		b = AppendUpdate(b, &ups[i])
	}
	return payloadFrame(testHeader, TypeProbe, uint16(len(ups)), b)
}

func syncFrame(s Sync, entries []DigestEntry) []byte {
	b := AppendSync(nil, &s)
	for i := range entries {
		b = AppendDigestEntry(b, &entries[i])
	}
	return payloadFrame(testHeader, TypeSync, uint16(len(entries)), b)
}

func TestProbeRoundTrip(t *testing.T) {
	for _, want := range []Probe{
		{Kind: ProbePing, Seq: 1, Target: 0xA1},
		{Kind: ProbePingReq, Seq: 2, Target: 0xA1, TargetAddr: testAddr4},
		{Kind: ProbeAck, Seq: ^uint64(0), Target: 0xA1, TargetAddr: testAddr6},
		{Kind: ProbeNack, Seq: 7, Target: 0xA1},
	} {
		f, err := ParseFrame(probeFrame(want, testUpdates))
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		got, n, err := ParseProbe(f.Payload)
		if err != nil || n != ProbeFixedLen || got != want {
			t.Fatalf("%+v: got %+v %d %v", want, got, n, err)
		}
		rest := f.Payload[n:]
		for i := range testUpdates {
			u, m, err := ParseUpdate(rest)
			if err != nil || m != UpdateLen || u != testUpdates[i] {
				t.Fatalf("update %d: %+v %v", i, u, err)
			}
			rest = rest[m:]
		}
		if len(f.Payload) != ProbePayloadLen(len(testUpdates)) {
			t.Fatalf("payload %d, want %d", len(f.Payload), ProbePayloadLen(len(testUpdates)))
		}
	}
}

func TestProbeRejects(t *testing.T) {
	good := AppendProbe(nil, &Probe{Kind: ProbePingReq, Seq: 1, Target: 2, TargetAddr: testAddr4})
	set := func(i int, v byte) []byte { b := append([]byte(nil), good...); b[i] = v; return b }
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"short":              {good[:ProbeFixedLen-1], ErrShort},
		"kind 0":             {set(offProbeKind, 0), ErrBadProbe},
		"kind 5":             {set(offProbeKind, 5), ErrBadProbe},
		"reserved":           {set(offProbeKind+3, 1), ErrBadProbe},
		"reserved tail":      {set(offProbeReserved+1, 1), ErrBadProbe},
		"ping-req, no addr":  {AppendProbe(nil, &Probe{Kind: ProbePingReq, Seq: 1, Target: 2}), ErrBadProbe},
		"bad address (port)": {func() []byte { b := set(offProbeTargetAddr+16, 0); b[offProbeTargetAddr+17] = 0; return b }(), ErrBadAddr},
	} {
		if _, _, err := ParseProbe(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	u := AppendUpdate(nil, &testUpdates[0])
	if _, _, err := ParseUpdate(u[:UpdateLen-1]); !errors.Is(err, ErrShort) {
		t.Errorf("short update: %v", err)
	}
	bad := append([]byte(nil), u...)
	bad[offUpdateState] = 5
	if _, _, err := ParseUpdate(bad); !errors.Is(err, ErrBadState) {
		t.Errorf("state 5: %v", err)
	}
	bad[offUpdateState], bad[offUpdateReserved] = 1, 1
	if _, _, err := ParseUpdate(bad); !errors.Is(err, ErrReserved) {
		t.Errorf("reserved: %v", err)
	}
	// The frame: count must match the updates exactly.
	f := probeFrame(Probe{Kind: ProbePing, Seq: 1, Target: 2}, testUpdates)
	h, _, _ := ParseHeader(f)
	h.Count = 3
	if err := ValidatePayload(&h, f[HeaderLen:]); !errors.Is(err, ErrTooManyRecords) {
		t.Errorf("count 3: %v", err)
	}
	h.Count = 1
	if err := ValidatePayload(&h, f[HeaderLen:]); !errors.Is(err, ErrBadLength) {
		t.Errorf("count 1: %v", err)
	}
}

func TestSyncRoundTripAndRejects(t *testing.T) {
	for _, want := range []Sync{{Kind: SyncPush, Part: 0, Parts: 1}, {Kind: SyncReply, Part: 6, Parts: 7}} {
		f, err := ParseFrame(syncFrame(want, testDigest))
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		got, n, err := ParseSync(f.Payload)
		if err != nil || n != SyncFixedLen || got != want || len(f.Payload) != SyncPayloadLen(len(testDigest)) {
			t.Fatalf("%+v: got %+v %d %v", want, got, n, err)
		}
	}
	good := AppendSync(nil, &Sync{Kind: SyncPush, Part: 1, Parts: 2})
	set := func(i int, v byte) []byte { b := append([]byte(nil), good...); b[i] = v; return b }
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"short":             {good[:SyncFixedLen-1], ErrShort},
		"kind 5":            {set(offSyncKind, 5), ErrBadSync},
		"kind 0":            {set(offSyncKind, 0), ErrBadSync},
		"digest in 2 parts": {AppendSync(nil, &Sync{Kind: SyncDigest, Part: 0, Parts: 2}), ErrBadSync},
		"reserved 1":        {set(offSyncReserved1, 1), ErrBadSync},
		"reserved 2":        {set(offSyncReserved2, 1), ErrBadSync},
		"part=parts":        {AppendSync(nil, &Sync{Kind: SyncPush, Part: 2, Parts: 2}), ErrBadSync},
		"no parts":          {AppendSync(nil, &Sync{Kind: SyncReply}), ErrBadSync},
	} {
		if _, _, err := ParseSync(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// marksFrame is a SyncMarks SYNC frame carrying marks.
func marksFrame(s Sync, marks ...TreeEntry) []byte {
	b := AppendSync(nil, &s)
	for i := range marks {
		b = AppendTreeEntry(b, &marks[i])
	}
	return payloadFrame(testHeader, TypeSync, uint16(len(marks)), b)
}

// TestSyncMarks: a marks SYNC round-trips with its tree entries, may carry
// none, and rejects a mark of seq 0, a digest entry's length and a count
// that disagrees with the payload.
func TestSyncMarks(t *testing.T) {
	want := []TreeEntry{{Origin: 0xC1, Epoch: 0xD1, Seq: 220}, {Origin: 0xC2, Epoch: 0xD2, Seq: 1}}
	s := Sync{Kind: SyncMarks, Part: 1, Parts: 2}
	f, err := ParseFrame(marksFrame(s, want...))
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := ParseSync(f.Payload)
	if err != nil || got != s || len(f.Payload) != SyncMarksPayloadLen(len(want)) {
		t.Fatalf("fixed part: %+v %v", got, err)
	}
	rest := f.Payload[n:]
	for i := range want {
		e, m, err := ParseTreeEntry(rest)
		if err != nil || e != want[i] {
			t.Fatalf("mark %d: %+v %v, want %+v", i, e, err, want[i])
		}
		rest = rest[m:]
	}
	if _, err := ParseFrame(marksFrame(Sync{Kind: SyncMarks, Part: 0, Parts: 1})); err != nil {
		t.Errorf("no marks: %v", err)
	}
	fixed := AppendSync(nil, &Sync{Kind: SyncMarks, Part: 0, Parts: 1})
	for name, c := range map[string]struct {
		frame []byte
		want  error
	}{
		"seq 0":          {marksFrame(Sync{Kind: SyncMarks, Part: 0, Parts: 1}, TreeEntry{Origin: 1, Epoch: 2}), ErrBadSync},
		"count too high": {payloadFrame(testHeader, TypeSync, 2, AppendTreeEntry(bytes.Clone(fixed), &want[0])), ErrTooManyRecords},
		"trailing bytes": {payloadFrame(testHeader, TypeSync, 1, append(AppendTreeEntry(bytes.Clone(fixed), &want[0]), 0)), ErrBadLength},
	} {
		if _, err := ParseFrame(c.frame); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// digestFrame is a SyncDigest SYNC frame summarising a table.
func digestFrame(sum SyncSum) []byte {
	b := AppendSync(nil, &Sync{Kind: SyncDigest, Part: 0, Parts: 1})
	return payloadFrame(testHeader, TypeSync, 0, AppendSyncSum(b, &sum))
}

// TestSyncDigest: a digest SYNC round-trips, carries exactly its sum (no
// entries, nothing after it), and its reserved word must be zero.
func TestSyncDigest(t *testing.T) {
	want := SyncSum{Hash: 0x0123456789ABCDEF, Members: 999}
	f, err := ParseFrame(digestFrame(want))
	if err != nil {
		t.Fatal(err)
	}
	s, n, err := ParseSync(f.Payload)
	if err != nil || s.Kind != SyncDigest {
		t.Fatalf("fixed part: %+v %v", s, err)
	}
	got, m, err := ParseSyncSum(f.Payload[n:])
	if err != nil || got != want || n+m != len(f.Payload) {
		t.Fatalf("sum: %+v %d %v, want %+v", got, m, err, want)
	}
	fixed := AppendSync(nil, &Sync{Kind: SyncDigest, Part: 0, Parts: 1})
	body := AppendSyncSum(nil, &want)
	hdr := func(count uint16, payload []byte) error {
		_, err := ParseFrame(payloadFrame(testHeader, TypeSync, count, payload))
		return err
	}
	for name, c := range map[string]struct {
		payload []byte
		count   uint16
		want    error
	}{
		"no sum":         {fixed, 0, ErrShort},
		"short sum":      {append(bytes.Clone(fixed), body[:SyncSumLen-1]...), 0, ErrShort},
		"trailing bytes": {append(append(bytes.Clone(fixed), body...), 0), 0, ErrBadLength},
		"with entries":   {append(bytes.Clone(fixed), body...), 1, ErrTooManyRecords},
		"reserved set":   {append(append(bytes.Clone(fixed), body[:12]...), 0, 0, 0, 1), 0, ErrBadSync},
	} {
		if err := hdr(c.count, c.payload); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestProbeSyncDoNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 512)
	p := Probe{Kind: ProbeAck, Seq: 9, Target: 3, TargetAddr: testAddr4}
	s := Sync{Kind: SyncReply, Part: 0, Parts: 1}
	a := testing.AllocsPerRun(100, func() {
		b := AppendProbe(buf[:0], &p)
		b = AppendUpdate(b, &testUpdates[1])
		ParseProbe(b)
		ParseUpdate(b[ProbeFixedLen:])
		ParseSync(AppendSync(buf[:0], &s))
		ParseSyncSum(AppendSyncSum(buf[:0], &SyncSum{Hash: 1, Members: 2}))
	})
	if a != 0 {
		t.Fatalf("%.1f allocations", a)
	}
}

// TestGoldenProbeFields decodes the PROBE and SYNC vectors field by field.
func TestGoldenProbeFields(t *testing.T) {
	f := goldenFrames()["probe_ack"]
	want := "03" + "00000000000000" + "000000000000002a" + "00000000000000a1" + // ack, reserved, seq 42, target
		"00000000000000000000ffffc0000201" + "1f0a" + "0000" // ::ffff:192.0.2.1:7946, reserved
	if got := hex.EncodeToString(f[HeaderLen : HeaderLen+ProbeFixedLen]); got != want {
		t.Fatalf("PROBE fixed part\n got %s\nwant %s", got, want)
	}
	wantUp := "00000000000000a2" + "00000000000000b2" + "0000000000000009" +
		"20010db8000000000000000000000001" + "1f0b" + "02" + "00" + "00000000000000c2"
	if got := hex.EncodeToString(f[HeaderLen+ProbeFixedLen+UpdateLen:]); got != wantUp {
		t.Fatalf("second update\n got %s\nwant %s", got, wantUp)
	}
	s := goldenFrames()["sync_push"]
	if got := hex.EncodeToString(s[HeaderLen : HeaderLen+SyncFixedLen]); got != "0100"+"0001"+"0003"+"0000" {
		t.Fatalf("SYNC fixed part %s", got)
	}
}
