package fuzz

import (
	"bytes"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// seedUpdates are the piggybacked updates of the PROBE seeds.
var seedUpdates = []codec.Update{
	{ID: 0xA1, Epoch: 0xB1, Incarnation: 3, Addr: seedAddr4, State: codec.StateAlive, From: 0xC1},
	{ID: 0xA2, Epoch: 0xB2, Incarnation: 9, Addr: seedAddr6, State: codec.StateSuspect, From: 0xC2},
}

func seedProbePayload(p codec.Probe, ups ...codec.Update) []byte {
	b := codec.AppendProbe(nil, &p)
	for i := range ups {
		b = codec.AppendUpdate(b, &ups[i])
	}
	return b
}

func seedSyncPayload(s codec.Sync, entries ...codec.DigestEntry) []byte {
	b := codec.AppendSync(nil, &s)
	for i := range entries {
		b = codec.AppendDigestEntry(b, &entries[i])
	}
	return b
}

// FuzzParseProbe: ParseProbe and ParseUpdate never panic, reject only with
// a sentinel, never accept a ping-req without an address, and what they
// accept re-encodes to the same bytes; a PROBE frame around the payload
// parses exactly when its fixed part and every update do.
func FuzzParseProbe(f *testing.F) {
	f.Add(seedProbePayload(codec.Probe{Kind: codec.ProbePing, Seq: 1, Target: 0xC1}))
	f.Add(seedProbePayload(codec.Probe{Kind: codec.ProbePingReq, Seq: 2, Target: 0xC1, TargetAddr: seedAddr6}, seedUpdates...))
	f.Add(make([]byte, codec.ProbeFixedLen+codec.UpdateLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := codec.ParseProbe(b)
		ok := err == nil
		if err != nil {
			checkSentinel(t, err)
		} else {
			if n != codec.ProbeFixedLen || p.Kind < codec.ProbePing || p.Kind > codec.ProbeNack ||
				(p.Kind == codec.ProbePingReq && !p.TargetAddr.IsValid()) {
				t.Fatalf("accepted n=%d %+v", n, p)
			}
			if got := codec.AppendProbe(nil, &p); !bytes.Equal(got, b[:n]) {
				t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
			}
		}
		count := 0
		if ok {
			rest := b[n:]
			ok = len(rest)%codec.UpdateLen == 0
			for ; ok && len(rest) > 0; rest = rest[codec.UpdateLen:] {
				u, m, err := codec.ParseUpdate(rest)
				if err != nil {
					checkSentinel(t, err)
					ok = false
					break
				}
				if got := codec.AppendUpdate(nil, &u); !bytes.Equal(got, rest[:m]) {
					t.Fatalf("update re-encoding differs\n in  %x\n out %x", rest[:m], got)
				}
				count++
			}
		}
		if len(b) > codec.MaxFrameSize-codec.HeaderLen {
			return
		}
		// Framed with the count the parts imply (or, when they were
		// rejected, with every whole update's count), ParseFrame agrees.
		if !ok {
			count = max(len(b)-codec.ProbeFixedLen, 0) / codec.UpdateLen
		}
		_, ferr := codec.ParseFrame(seedFrame(seedHeader, codec.TypeProbe, uint16(count), b))
		if (ferr == nil) != ok {
			t.Fatalf("PROBE frame: ParseFrame %v, parts accepted %v, %d updates", ferr, ok, count)
		}
	})
}

// FuzzParseSync: ParseSync never panics, rejects only with a sentinel,
// never accepts a part at or beyond its count (or a digest in more than
// one part), and what it accepts re-encodes to the same bytes; a SYNC
// frame around a fixed part alone parses exactly when the fixed part does
// and is no digest, one around a digest exactly when its sum does.
func FuzzParseSync(f *testing.F) {
	f.Add(seedSyncPayload(codec.Sync{Kind: codec.SyncPush, Part: 0, Parts: 1}))
	f.Add(seedSyncPayload(codec.Sync{Kind: codec.SyncReply, Part: 2, Parts: 3}))
	f.Add(codec.AppendSyncSum(seedSyncPayload(codec.Sync{Kind: codec.SyncDigest, Part: 0, Parts: 1}), &codec.SyncSum{Hash: 7, Members: 3}))
	f.Add(codec.AppendTreeEntry(seedSyncPayload(codec.Sync{Kind: codec.SyncMarks, Part: 0, Parts: 1}), &codec.TreeEntry{Origin: 0xC1, Epoch: 0xD1, Seq: 220}))
	f.Add(make([]byte, codec.SyncFixedLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, n, err := codec.ParseSync(b)
		if err != nil {
			checkSentinel(t, err)
		} else {
			if n != codec.SyncFixedLen || s.Part >= s.Parts || s.Kind < codec.SyncPush || s.Kind > codec.SyncMarks ||
				(s.Kind == codec.SyncDigest && s.Parts != 1) {
				t.Fatalf("accepted n=%d %+v", n, s)
			}
			if got := codec.AppendSync(nil, &s); !bytes.Equal(got, b[:n]) {
				t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
			}
		}
		if len(b) > codec.MaxFrameSize-codec.HeaderLen {
			return
		}
		// A frame of count 0 parses when the fixed part does and nothing
		// follows it, or, for a digest, exactly a good sum follows.
		_, ferr := codec.ParseFrame(seedFrame(seedHeader, codec.TypeSync, 0, b))
		want := err == nil && len(b) == codec.SyncFixedLen && s.Kind != codec.SyncDigest
		if err == nil && s.Kind == codec.SyncDigest {
			_, _, serr := codec.ParseSyncSum(b[n:])
			want = serr == nil && len(b) == codec.SyncFixedLen+codec.SyncSumLen
		}
		if (ferr == nil) != want {
			t.Fatalf("SYNC frame: ParseFrame %v, ParseSync %v, %d bytes", ferr, err, len(b))
		}
	})
}
