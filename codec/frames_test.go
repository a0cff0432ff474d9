package codec

import (
	"bytes"
	"net/netip"
)

// Shared fixtures: one well-formed frame of every kind, built by the
// encoder. The golden vectors pin exactly these bytes.

var testHeader = Header{
	HopLimit: DefaultHopLimit,
	Cluster:  ClusterHash("golden"),
	Origin:   0x0102030405060708,
	Epoch:    0x1112131415161718,
	Seq:      42,
	Packet:   77,
}

var (
	testAddr4 = netip.MustParseAddrPort("192.0.2.1:7946")
	testAddr6 = netip.MustParseAddrPort("[2001:db8::1]:7947")
)

var testDigest = []DigestEntry{
	{ID: 0xA1, Epoch: 0xB1, Incarnation: 3, Addr: netip.MustParseAddrPort("198.51.100.7:7946"), State: StateAlive},
	{ID: 0xA2, Epoch: 0xB2, Incarnation: 9, Addr: testAddr6, State: StateSuspect},
}

var testChallenge = Challenge{Time: 0x0000019A2B3C4D5E, Addr: testAddr4, Cookie: [CookieLen]byte{0xc0, 0x0c, 0x1e, 3: 1, 15: 0xff}}

var testRanges = []SeqRange{{First: 3, Last: 5}, {First: 9, Last: 9}}

var testTag = []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

func dataFrame(h Header, recs ...any) []byte {
	h.Type = TypeData
	var fb FrameBuilder
	fb.Reset(make([]byte, 0, MaxFrameSize), h, MaxFrameSize)
	for i := 0; i < len(recs); i += 2 {
		if !fb.Add([]byte(recs[i].(string)), recs[i+1].(RecordFlags)) {
			panic("fixture record does not fit")
		}
	}
	return fb.Finish()
}

func payloadFrame(h Header, t FrameType, count uint16, payload []byte) []byte {
	h.Type = t
	b := AppendHeader(nil, &h)
	b = append(b, payload...)
	if err := FinishFrame(b, count); err != nil {
		panic(err)
	}
	return b
}

func aliveFrame(a Alive, entries []DigestEntry) []byte {
	p := AppendAlive(nil, &a)
	for i := range entries {
		p = AppendDigestEntry(p, &entries[i])
	}
	return payloadFrame(testHeader, TypeAlive, uint16(len(entries)), p)
}

func nackFrame(n Nack, ranges []SeqRange) []byte {
	p := AppendNack(nil, &n)
	for _, r := range ranges {
		p = AppendSeqRange(p, r)
	}
	return payloadFrame(testHeader, TypeNack, uint16(len(ranges)), p)
}

func treeFrame(t FrameType, entries ...TreeEntry) []byte {
	var p []byte
	for i := range entries {
		p = AppendTreeEntry(p, &entries[i])
	}
	return payloadFrame(testHeader, t, uint16(len(entries)), p)
}

// goldenFrames returns the frames pinned under testdata/, by file name.
func goldenFrames() map[string][]byte {
	retrans := testHeader
	retrans.Flags = FlagRetransmit
	retrans.Hops = 1
	auth := testHeader
	auth.Flags = FlagAuth
	hwm := testHeader
	hwm.Seq = 1234
	return map[string][]byte{
		"data":            dataFrame(testHeader, "user:42", RecordExact, "session:", RecordPrefix),
		"data_retransmit": dataFrame(retrans, "user:42", RecordExact),
		"data_auth":       append(dataFrame(auth, "user:7", RecordExact), testTag...),
		"alive":           aliveFrame(Alive{Incarnation: 5, HWM: 41, Addr: testAddr4}, testDigest),
		"leave":           payloadFrame(testHeader, TypeLeave, 0, AppendLeave(nil, 6)),
		"nack":            nackFrame(Nack{Origin: 0xC1, Epoch: 0xD1}, testRanges),
		"hwm":             payloadFrame(hwm, TypeHWM, 0, nil),
		"ack":             payloadFrame(testHeader, TypeAck, 0, AppendAck(nil, &Ack{Origin: 0xC1, Epoch: 0xD1, Cum: 77})),
		"join_ask":        payloadFrame(testHeader, TypeJoin, 0, AppendJoin(nil, &Join{Kind: JoinAsk, Member: 0xC1})),
		"join_answer":     payloadFrame(testHeader, TypeJoin, 0, AppendJoin(nil, &Join{Kind: JoinAnswer, Member: 0xC1, From: 42})),
		"challenge":       payloadFrame(testHeader, TypeChallenge, 0, AppendChallenge(nil, &testChallenge)),
		"response":        payloadFrame(testHeader, TypeResponse, 0, AppendChallenge(nil, &testChallenge)),
		"probe_ping":      probeFrame(Probe{Kind: ProbePing, Seq: 41, Target: 0xA1}, nil),
		"probe_ack":       probeFrame(Probe{Kind: ProbeAck, Seq: 42, Target: 0xA1, TargetAddr: testAddr4}, testUpdates),
		"sync_push":       syncFrame(Sync{Kind: SyncPush, Part: 1, Parts: 3}, testDigest),
		"sync_digest":     digestFrame(SyncSum{Hash: 0x0123456789ABCDEF, Members: 999}),
		"sync_marks":      marksFrame(Sync{Kind: SyncMarks, Part: 0, Parts: 1}, TreeEntry{Origin: 0xC1, Epoch: 0xD1, Seq: 220}),
		"join_marks":      payloadFrame(testHeader, TypeJoin, 0, AppendJoin(nil, &Join{Kind: JoinMarks, Member: 0xC1})),
		"ihave":           treeFrame(TypeIHave, TreeEntry{Origin: 0xC1, Epoch: 0xD1, Seq: 77}, TreeEntry{Origin: 0xC2, Epoch: 0xD2, Seq: 1}),
		"graft":           treeFrame(TypeGraft, TreeEntry{Origin: 0xC1, Epoch: 0xD1, Seq: 42}),
		"prune":           treeFrame(TypePrune, TreeEntry{Origin: 0xC1, Epoch: 0xD1}),
	}
}

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func(b []byte) []byte) []byte {
	return f(bytes.Clone(b))
}
