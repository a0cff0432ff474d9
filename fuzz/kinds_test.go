package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// frameKind is everything the fuzzers know about one frame type: how to
// build a frame of it from fuzz input (FuzzRoundTrip), how to re-encode a
// parsed one from its decoded values (FuzzParseFrame), and valid payloads
// made by the encoder (the seeds of FuzzParseFrame, FuzzParseHeader,
// FuzzRoundTrip and FuzzNodeReceive). Every fuzzer walks frameKinds, so a
// new frame type is covered by every fuzzer once its entry is added here;
// TestFuzzersCoverEveryFrameType fails until it is.
type frameKind struct {
	typ codec.FrameType
	// build makes a frame with header h from fuzz input. It returns the
	// frame (header and payload, no tag), the header's Count, and a check
	// that a parsed payload carries exactly the values built.
	build func(t *testing.T, r *reader, h codec.Header, budget int) (frame []byte, count uint16, check func(t *testing.T, payload []byte))
	// reencode appends, to dst, the payload re-encoded from the values a
	// payload ParseFrame accepted decodes to.
	reencode func(t *testing.T, dst, payload []byte, count uint16) []byte
	// seeds are valid payloads with their counts.
	seeds func() []seedPayload
}

type seedPayload struct {
	count   uint16
	payload []byte
}

// kindOf returns the entry for typ.
func kindOf(typ codec.FrameType) (*frameKind, bool) {
	for i := range frameKinds {
		if frameKinds[i].typ == typ {
			return &frameKinds[i], true
		}
	}
	return nil, false
}

// control frames a payload built by append-style encoders.
func control(t *testing.T, h codec.Header, count uint16, payload []byte) []byte {
	t.Helper()
	b := append(codec.AppendHeader(nil, &h), payload...)
	if err := codec.FinishFrame(b, count); err != nil {
		t.Fatal(err)
	}
	return b
}

var frameKinds = []frameKind{
	{
		typ: codec.TypeData,
		build: func(t *testing.T, r *reader, h codec.Header, budget int) ([]byte, uint16, func(*testing.T, []byte)) {
			var fb codec.FrameBuilder
			fb.Reset(make([]byte, 0, budget), h, budget)
			var keys [][]byte
			var rflags []codec.RecordFlags
			for len(keys) == 0 || len(r.b) > 0 {
				kl := 1 + (int(r.u8())<<8|int(r.u8()))%codec.MaxKeyLen
				key := r.take(min(kl, max(len(r.b), 1)))
				rf := codec.RecordExact
				if len(key)%2 == 0 {
					rf = codec.RecordPrefix
				}
				if !fb.Add(key, rf) {
					break
				}
				keys, rflags = append(keys, key), append(rflags, rf)
			}
			frame := fb.Finish()
			if fb.Len() > budget {
				t.Fatalf("builder exceeded budget: %d > %d", fb.Len(), budget)
			}
			return frame, uint16(len(keys)), func(t *testing.T, p []byte) {
				it := codec.NewRecordIter(p, uint16(len(keys)))
				i := 0
				for rec, ok := it.Next(); ok; rec, ok = it.Next() {
					if !bytes.Equal(rec.Key, keys[i]) || rec.Flags != rflags[i] {
						t.Fatalf("record %d: %q %v, want %q %v", i, rec.Key, rec.Flags, keys[i], rflags[i])
					}
					i++
				}
				if it.Err() != nil || i != len(keys) {
					t.Fatalf("records: %d of %d, %v", i, len(keys), it.Err())
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, count uint16) []byte {
			it := codec.NewRecordIter(p, count)
			for r, ok := it.Next(); ok; r, ok = it.Next() {
				out = codec.AppendRecord(out, r.Key, r.Flags)
			}
			if it.Err() != nil {
				t.Fatalf("ParseFrame accepted records RecordIter rejects: %v", it.Err())
			}
			return out
		},
		seeds: func() []seedPayload {
			p := codec.AppendRecord(nil, []byte("user:42"), codec.RecordExact)
			p = codec.AppendRecord(p, []byte("session:"), codec.RecordPrefix)
			return []seedPayload{{2, p}}
		},
	},
	{
		typ: codec.TypeAlive,
		build: func(t *testing.T, r *reader, h codec.Header, _ int) ([]byte, uint16, func(*testing.T, []byte)) {
			alive := codec.Alive{Incarnation: r.u64(), HWM: r.u64(), Addr: r.addr()}
			n := int(r.u8()) % (codec.MaxDigestEntries(codec.DefaultMaxFrameSize, true) + 1)
			p := codec.AppendAlive(nil, &alive)
			var entries []codec.DigestEntry
			for range n {
				e := codec.DigestEntry{ID: r.u64(), Epoch: r.u64(), Incarnation: r.u64(), Addr: r.addr(), State: codec.MemberState(1 + r.u8()%4)}
				entries = append(entries, e)
				p = codec.AppendDigestEntry(p, &e)
			}
			return control(t, h, uint16(n), p), uint16(n), func(t *testing.T, p []byte) {
				a, n, _ := codec.ParseAlive(p)
				if a != alive {
					t.Fatalf("alive %+v, want %+v", a, alive)
				}
				for i, we := range entries {
					e, m, _ := codec.ParseDigestEntry(p[n:])
					if e != we {
						t.Fatalf("entry %d: %+v, want %+v", i, e, we)
					}
					n += m
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, count uint16) []byte {
			a, n, err := codec.ParseAlive(p)
			if err != nil {
				t.Fatalf("ParseFrame accepted an ALIVE ParseAlive rejects: %v", err)
			}
			out = codec.AppendAlive(out, &a)
			for i := 0; i < int(count); i++ {
				e, m, err := codec.ParseDigestEntry(p[n:])
				if err != nil {
					t.Fatalf("digest entry %d: %v", i, err)
				}
				out = codec.AppendDigestEntry(out, &e)
				n += m
			}
			return out
		},
		seeds: func() []seedPayload {
			return []seedPayload{{uint16(len(seedDigest)), seedAlivePayload(seedDigest)}, {0, seedAlivePayload(nil)}}
		},
	},
	{
		typ: codec.TypeLeave,
		build: func(t *testing.T, r *reader, h codec.Header, _ int) ([]byte, uint16, func(*testing.T, []byte)) {
			leave := r.u64()
			return control(t, h, 0, codec.AppendLeave(nil, leave)), 0, func(t *testing.T, p []byte) {
				if inc, _, _ := codec.ParseLeave(p); inc != leave {
					t.Fatalf("leave %d, want %d", inc, leave)
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, _ uint16) []byte {
			inc, _, err := codec.ParseLeave(p)
			if err != nil {
				t.Fatal(err)
			}
			return codec.AppendLeave(out, inc)
		},
		seeds: func() []seedPayload { return []seedPayload{{0, codec.AppendLeave(nil, 6)}} },
	},
	{
		typ: codec.TypeNack,
		build: func(t *testing.T, r *reader, h codec.Header, _ int) ([]byte, uint16, func(*testing.T, []byte)) {
			nack := codec.Nack{Origin: r.u64(), Epoch: r.u64()}
			p := codec.AppendNack(nil, &nack)
			var ranges []codec.SeqRange
			for n := 1 + int(r.u8())%codec.MaxNackRanges(codec.DefaultMaxFrameSize, true); len(ranges) < n; {
				first := max(r.u64()>>1, 1)
				rg := codec.SeqRange{First: first, Last: first + r.u64()>>1}
				ranges = append(ranges, rg)
				p = codec.AppendSeqRange(p, rg)
			}
			return control(t, h, uint16(len(ranges)), p), uint16(len(ranges)), func(t *testing.T, p []byte) {
				nk, n, _ := codec.ParseNack(p)
				if nk != nack {
					t.Fatalf("nack %+v, want %+v", nk, nack)
				}
				for i, wr := range ranges {
					rg, m, _ := codec.ParseSeqRange(p[n:])
					if rg != wr {
						t.Fatalf("range %d: %+v, want %+v", i, rg, wr)
					}
					n += m
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, count uint16) []byte {
			nk, n, err := codec.ParseNack(p)
			if err != nil {
				t.Fatal(err)
			}
			out = codec.AppendNack(out, &nk)
			for i := 0; i < int(count); i++ {
				r, m, err := codec.ParseSeqRange(p[n:])
				if err != nil {
					t.Fatalf("range %d: %v", i, err)
				}
				out = codec.AppendSeqRange(out, r)
				n += m
			}
			return out
		},
		seeds: func() []seedPayload {
			return []seedPayload{{2, seedNackPayload(codec.SeqRange{First: 3, Last: 5}, codec.SeqRange{First: 9, Last: 9})}}
		},
	},
	{
		typ: codec.TypeHWM,
		build: func(t *testing.T, _ *reader, h codec.Header, _ int) ([]byte, uint16, func(*testing.T, []byte)) {
			return control(t, h, 0, nil), 0, func(t *testing.T, p []byte) {
				if len(p) != 0 {
					t.Fatalf("HWM payload of %d bytes", len(p))
				}
			}
		},
		reencode: func(_ *testing.T, out, _ []byte, _ uint16) []byte { return out },
		seeds:    func() []seedPayload { return []seedPayload{{0, nil}} },
	},
	{
		typ: codec.TypeAck,
		build: func(t *testing.T, r *reader, h codec.Header, _ int) ([]byte, uint16, func(*testing.T, []byte)) {
			ack := codec.Ack{Origin: r.u64(), Epoch: r.u64(), Cum: r.u64()}
			return control(t, h, 0, codec.AppendAck(nil, &ack)), 0, func(t *testing.T, p []byte) {
				if a, _, _ := codec.ParseAck(p); a != ack {
					t.Fatalf("ack %+v, want %+v", a, ack)
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, _ uint16) []byte {
			a, _, err := codec.ParseAck(p)
			if err != nil {
				t.Fatalf("ParseFrame accepted an ACK ParseAck rejects: %v", err)
			}
			return codec.AppendAck(out, &a)
		},
		seeds: func() []seedPayload {
			return []seedPayload{{0, codec.AppendAck(nil, &codec.Ack{Origin: 0xC1, Epoch: 0xD1, Cum: 40})}}
		},
	},
	{
		typ: codec.TypeJoin,
		build: func(t *testing.T, r *reader, h codec.Header, _ int) ([]byte, uint16, func(*testing.T, []byte)) {
			j := codec.Join{Kind: codec.JoinAsk, Member: r.u64()}
			switch from := r.u64(); {
			case from%2 == 1:
				j.Kind, j.From = codec.JoinAnswer, from
			case from%4 == 2:
				j.Kind = codec.JoinMarks
			}
			return control(t, h, 0, codec.AppendJoin(nil, &j)), 0, func(t *testing.T, p []byte) {
				if got, _, _ := codec.ParseJoin(p); got != j {
					t.Fatalf("join %+v, want %+v", got, j)
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, _ uint16) []byte {
			j, _, err := codec.ParseJoin(p)
			if err != nil {
				t.Fatalf("ParseFrame accepted a JOIN ParseJoin rejects: %v", err)
			}
			return codec.AppendJoin(out, &j)
		},
		seeds: func() []seedPayload {
			return []seedPayload{
				{0, codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinAsk, Member: 0xC1})},
				{0, codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinAnswer, Member: 0xC1, From: 40})},
				{0, codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinMarks, Member: 0xC1})},
			}
		},
	},
	challengeKind(codec.TypeChallenge),
	challengeKind(codec.TypeResponse),
	treeKind(codec.TypeIHave),
	treeKind(codec.TypeGraft),
	treeKind(codec.TypePrune),
	{
		typ: codec.TypeProbe,
		build: func(t *testing.T, r *reader, h codec.Header, budget int) ([]byte, uint16, func(*testing.T, []byte)) {
			pr := codec.Probe{Kind: codec.ProbeKind(1 + r.u8()%4), Seq: r.u64(), Target: r.u64(), TargetAddr: r.addr()}
			if pr.Kind == codec.ProbePingReq && !pr.TargetAddr.IsValid() {
				pr.TargetAddr = seedAddr4
			}
			room := (budget - codec.HeaderLen - codec.ProbeFixedLen) / codec.UpdateLen
			n := int(r.u8()) % (max(room, 0) + 1)
			p := codec.AppendProbe(nil, &pr)
			var ups []codec.Update
			for range n {
				u := codec.Update{ID: r.u64(), Epoch: r.u64(), Incarnation: r.u64(), Addr: r.addr(), State: codec.MemberState(1 + r.u8()%4), From: r.u64()}
				ups = append(ups, u)
				p = codec.AppendUpdate(p, &u)
			}
			return control(t, h, uint16(n), p), uint16(n), func(t *testing.T, p []byte) {
				got, n, _ := codec.ParseProbe(p)
				if got != pr {
					t.Fatalf("probe %+v, want %+v", got, pr)
				}
				for i, wu := range ups {
					u, m, _ := codec.ParseUpdate(p[n:])
					if u != wu {
						t.Fatalf("update %d: %+v, want %+v", i, u, wu)
					}
					n += m
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, count uint16) []byte {
			pr, n, err := codec.ParseProbe(p)
			if err != nil {
				t.Fatalf("ParseFrame accepted a PROBE ParseProbe rejects: %v", err)
			}
			out = codec.AppendProbe(out, &pr)
			for i := 0; i < int(count); i++ {
				u, m, err := codec.ParseUpdate(p[n:])
				if err != nil {
					t.Fatalf("update %d: %v", i, err)
				}
				out = codec.AppendUpdate(out, &u)
				n += m
			}
			return out
		},
		seeds: func() []seedPayload {
			return []seedPayload{
				{0, seedProbePayload(codec.Probe{Kind: codec.ProbePing, Seq: 1, Target: 0xC1})},
				{uint16(len(seedUpdates)), seedProbePayload(codec.Probe{Kind: codec.ProbePingReq, Seq: 2, Target: 0xC1, TargetAddr: seedAddr4}, seedUpdates...)},
				{uint16(len(seedUpdates)), seedProbePayload(codec.Probe{Kind: codec.ProbeAck, Seq: 2, Target: 0xC1}, seedUpdates...)},
			}
		},
	},
	{
		typ: codec.TypeSync,
		build: func(t *testing.T, r *reader, h codec.Header, budget int) ([]byte, uint16, func(*testing.T, []byte)) {
			s := codec.Sync{Kind: codec.SyncKind(1 + r.u8()%4), Parts: 1 + uint16(r.u8())}
			if s.Kind == codec.SyncMarks {
				s.Part = uint16(r.u8()) % s.Parts
				room := (budget - codec.HeaderLen - codec.SyncFixedLen) / codec.TreeEntryLen
				n := int(r.u8()) % (max(room, 0) + 1)
				p := codec.AppendSync(nil, &s)
				var marks []codec.TreeEntry
				for range n {
					e := codec.TreeEntry{Origin: r.u64(), Epoch: r.u64(), Seq: 1 + r.u64()%(1<<62)}
					marks = append(marks, e)
					p = codec.AppendTreeEntry(p, &e)
				}
				return control(t, h, uint16(n), p), uint16(n), func(t *testing.T, p []byte) {
					got, n, _ := codec.ParseSync(p)
					if got != s {
						t.Fatalf("sync %+v, want %+v", got, s)
					}
					for i, we := range marks {
						e, m, _ := codec.ParseTreeEntry(p[n:])
						if e != we {
							t.Fatalf("mark %d: %+v, want %+v", i, e, we)
						}
						n += m
					}
				}
			}
			if s.Kind == codec.SyncDigest {
				s.Parts = 1
				sum := codec.SyncSum{Hash: r.u64(), Members: uint32(r.u64())}
				p := codec.AppendSyncSum(codec.AppendSync(nil, &s), &sum)
				return control(t, h, 0, p), 0, func(t *testing.T, p []byte) {
					got, n, _ := codec.ParseSync(p)
					gs, _, err := codec.ParseSyncSum(p[n:])
					if got != s || gs != sum || err != nil {
						t.Fatalf("digest %+v %+v %v, want %+v %+v", got, gs, err, s, sum)
					}
				}
			}
			s.Part = uint16(r.u8()) % s.Parts
			room := (budget - codec.HeaderLen - codec.SyncFixedLen) / codec.DigestEntryLen
			n := int(r.u8()) % (max(room, 0) + 1)
			p := codec.AppendSync(nil, &s)
			var entries []codec.DigestEntry
			for range n {
				e := codec.DigestEntry{ID: r.u64(), Epoch: r.u64(), Incarnation: r.u64(), Addr: r.addr(), State: codec.MemberState(1 + r.u8()%4)}
				entries = append(entries, e)
				p = codec.AppendDigestEntry(p, &e)
			}
			return control(t, h, uint16(n), p), uint16(n), func(t *testing.T, p []byte) {
				got, n, _ := codec.ParseSync(p)
				if got != s {
					t.Fatalf("sync %+v, want %+v", got, s)
				}
				for i, we := range entries {
					e, m, _ := codec.ParseDigestEntry(p[n:])
					if e != we {
						t.Fatalf("entry %d: %+v, want %+v", i, e, we)
					}
					n += m
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, count uint16) []byte {
			s, n, err := codec.ParseSync(p)
			if err != nil {
				t.Fatalf("ParseFrame accepted a SYNC ParseSync rejects: %v", err)
			}
			out = codec.AppendSync(out, &s)
			if s.Kind == codec.SyncDigest {
				sum, _, err := codec.ParseSyncSum(p[n:])
				if err != nil {
					t.Fatalf("ParseFrame accepted a digest ParseSyncSum rejects: %v", err)
				}
				return codec.AppendSyncSum(out, &sum)
			}
			if s.Kind == codec.SyncMarks {
				for i := 0; i < int(count); i++ {
					e, m, err := codec.ParseTreeEntry(p[n:])
					if err != nil {
						t.Fatalf("mark %d: %v", i, err)
					}
					out = codec.AppendTreeEntry(out, &e)
					n += m
				}
				return out
			}
			for i := 0; i < int(count); i++ {
				e, m, err := codec.ParseDigestEntry(p[n:])
				if err != nil {
					t.Fatalf("digest entry %d: %v", i, err)
				}
				out = codec.AppendDigestEntry(out, &e)
				n += m
			}
			return out
		},
		seeds: func() []seedPayload {
			return []seedPayload{
				{uint16(len(seedDigest)), seedSyncPayload(codec.Sync{Kind: codec.SyncPush, Part: 0, Parts: 2}, seedDigest...)},
				{0, seedSyncPayload(codec.Sync{Kind: codec.SyncReply, Part: 0, Parts: 1})},
				{0, codec.AppendSyncSum(seedSyncPayload(codec.Sync{Kind: codec.SyncDigest, Part: 0, Parts: 1}), &codec.SyncSum{Hash: 7, Members: 3})},
				{1, codec.AppendTreeEntry(seedSyncPayload(codec.Sync{Kind: codec.SyncMarks, Part: 0, Parts: 1}), &codec.TreeEntry{Origin: 0xC1, Epoch: 0xD1, Seq: 220})},
			}
		},
	},
}

// challengeKind covers CHALLENGE and RESPONSE, which share a payload.
func challengeKind(typ codec.FrameType) frameKind {
	return frameKind{
		typ: typ,
		build: func(t *testing.T, r *reader, h codec.Header, _ int) ([]byte, uint16, func(*testing.T, []byte)) {
			c := seedChallenge
			c.Time = r.u64()
			for i := range c.Cookie {
				c.Cookie[i] = byte(r.u64())
			}
			return control(t, h, 0, codec.AppendChallenge(nil, &c)), 0, func(t *testing.T, p []byte) {
				if got, _, _ := codec.ParseChallenge(p); got != c {
					t.Fatalf("challenge %+v, want %+v", got, c)
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, _ uint16) []byte {
			c, _, err := codec.ParseChallenge(p)
			if err != nil {
				t.Fatalf("ParseFrame accepted a %v ParseChallenge rejects: %v", typ, err)
			}
			return codec.AppendChallenge(out, &c)
		},
		seeds: func() []seedPayload {
			return []seedPayload{{0, codec.AppendChallenge(nil, &seedChallenge)}}
		},
	}
}

// treeKind covers IHAVE, GRAFT and PRUNE, which share a payload: Count
// >= 1 tree entries, with a sequence except in a PRUNE.
func treeKind(typ codec.FrameType) frameKind {
	seqOf := func(r *reader) uint64 {
		if typ == codec.TypePrune {
			return 0
		}
		return 1 + r.u64()%(1<<62)
	}
	return frameKind{
		typ: typ,
		build: func(t *testing.T, r *reader, h codec.Header, budget int) ([]byte, uint16, func(*testing.T, []byte)) {
			room := max((budget-codec.HeaderLen)/codec.TreeEntryLen, 1)
			n := 1 + int(r.u8())%room
			var p []byte
			entries := make([]codec.TreeEntry, n)
			for i := range entries {
				entries[i] = codec.TreeEntry{Origin: r.u64(), Epoch: r.u64(), Seq: seqOf(r)}
				p = codec.AppendTreeEntry(p, &entries[i])
			}
			return control(t, h, uint16(n), p), uint16(n), func(t *testing.T, p []byte) {
				for i, we := range entries {
					e, _, _ := codec.ParseTreeEntry(p[i*codec.TreeEntryLen:])
					if e != we {
						t.Fatalf("entry %d: %+v, want %+v", i, e, we)
					}
				}
			}
		},
		reencode: func(t *testing.T, out, p []byte, count uint16) []byte {
			for i := 0; i < int(count); i++ {
				e, _, err := codec.ParseTreeEntry(p[i*codec.TreeEntryLen:])
				if err != nil {
					t.Fatalf("ParseFrame accepted a %v entry ParseTreeEntry rejects: %v", typ, err)
				}
				out = codec.AppendTreeEntry(out, &e)
			}
			return out
		},
		seeds: func() []seedPayload {
			a := codec.TreeEntry{Origin: 0xC1, Epoch: 0xD1, Seq: 77}
			b := codec.TreeEntry{Origin: 0xC2, Epoch: 0xD2, Seq: 1}
			if typ == codec.TypePrune {
				a.Seq, b.Seq = 0, 0
			}
			return []seedPayload{
				{1, codec.AppendTreeEntry(nil, &a)},
				{2, codec.AppendTreeEntry(codec.AppendTreeEntry(nil, &a), &b)},
			}
		},
	}
}

// TestFuzzersCoverEveryFrameType fails when codec accepts a frame type
// that frameKinds (and so every fuzzer) does not know, and checks each
// entry's seeds are frames ParseFrame accepts, of that type.
func TestFuzzersCoverEveryFrameType(t *testing.T) {
	for typ := range 256 {
		h := seedHeader
		h.Type = codec.FrameType(typ)
		_, _, err := codec.ParseHeader(codec.AppendHeader(nil, &h))
		accepted := !errors.Is(err, codec.ErrBadType)
		_, known := kindOf(h.Type)
		if accepted != known {
			t.Errorf("frame type %v: codec accepts it %v, fuzzers know it %v (add it to frameKinds)", h.Type, accepted, known)
		}
	}
	for _, k := range frameKinds {
		for i, s := range k.seeds() {
			fr, err := codec.ParseFrame(seedFrame(seedHeader, k.typ, s.count, s.payload))
			if err != nil || fr.Header.Type != k.typ {
				t.Errorf("%v seed %d: %v", k.typ, i, err)
			}
		}
	}
}
