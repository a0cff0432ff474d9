package fuzz

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// Properties checked by every decoder target:
//   - it never panics, whatever the bytes;
//   - a rejection is one of codec's sentinel errors (countable by reason);
//   - anything accepted re-encodes, from the parsed values, to exactly the
//     bytes it was parsed from (nothing ignored, nothing lost).

var sentinels = []error{
	codec.ErrShort, codec.ErrBadMagic, codec.ErrBadVersion, codec.ErrBadHeaderLen,
	codec.ErrBadType, codec.ErrBadFlags, codec.ErrReserved, codec.ErrBadLength,
	codec.ErrTooManyRecords, codec.ErrEmptyKey, codec.ErrKeyTooLong, codec.ErrBadRecordFlags,
	codec.ErrBadHash, codec.ErrBadAddr, codec.ErrBadRange, codec.ErrBadState, codec.ErrBadJoin,
	codec.ErrBadProbe, codec.ErrBadSync, codec.ErrBadTree,
	codec.ErrFrameTooLarge, codec.ErrFrameTooSmall,
}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if err == s {
			return
		}
	}
	t.Fatalf("error %v is not a codec sentinel", err)
}

// encodeFrame re-encodes a parsed frame from its decoded values only.
func encodeFrame(t *testing.T, f codec.Frame) []byte {
	t.Helper()
	k, ok := kindOf(f.Header.Type)
	if !ok {
		t.Fatalf("ParseFrame accepted type %v, which frameKinds does not know", f.Header.Type)
	}
	out := k.reencode(t, codec.AppendHeader(nil, &f.Header), f.Payload, f.Header.Count)
	return append(out, f.Tag...)
}

func FuzzParseFrame(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := codec.ParseFrame(b)
		h, _, herr := codec.ParseHeader(b)
		if err != nil {
			checkSentinel(t, err)
			if herr == nil && codec.ValidatePayload(&h, b[codec.HeaderLen:codec.HeaderLen+int(h.PayloadLen)]) != err {
				t.Fatalf("ParseFrame %v disagrees with ParseHeader+ValidatePayload", err)
			}
			return
		}
		if herr != nil || h != fr.Header {
			t.Fatalf("ParseHeader %+v, %v disagrees with ParseFrame %+v", h, herr, fr.Header)
		}
		padded := fr.Header.Flags&codec.FlagPadded != 0
		if len(b) > codec.MaxFrameSize || len(b) < codec.FrameLen(&fr.Header) || (!padded && len(b) != codec.FrameLen(&fr.Header)) {
			t.Fatalf("accepted %d bytes, FrameLen %d, flags %b", len(b), codec.FrameLen(&fr.Header), fr.Header.Flags)
		}
		if (fr.Header.Flags&codec.FlagAuth != 0) != (len(fr.Tag) == codec.TagLen) {
			t.Fatalf("flags %b with a %d-byte tag", fr.Header.Flags, len(fr.Tag))
		}
		got := encodeFrame(t, fr)
		got = append(got, make([]byte, len(b)-len(got))...) // padding is zeros
		if !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs\n in  %x\n out %x", b, got)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := codec.ParseHeader(b)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if n != codec.HeaderLen || len(b) < codec.FrameLen(&h) || (h.Flags&codec.FlagPadded == 0 && len(b) != codec.FrameLen(&h)) {
			t.Fatalf("n %d, len %d, FrameLen %d", n, len(b), codec.FrameLen(&h))
		}
		if got := codec.AppendHeader(nil, &h); !bytes.Equal(got, b[:codec.HeaderLen]) {
			t.Fatalf("header re-encoding differs\n in  %x\n out %x", b[:codec.HeaderLen], got)
		}
		// Relaying changes only hops, and never the AAD.
		var before, after [codec.HeaderLen]byte
		codec.HeaderAAD(&before, b)
		relayed := bytes.Clone(b)
		codec.SetHops(relayed, h.Hops+1)
		codec.HeaderAAD(&after, relayed)
		h2, _, err := codec.ParseHeader(relayed)
		if err != nil || before != after || h2.Hops != h.Hops+1 {
			t.Fatalf("SetHops: %v, aad equal %v, hops %d", err, before == after, h2.Hops)
		}
		h2.Hops = h.Hops
		if h2 != h {
			t.Fatal("SetHops changed another field")
		}
	})
}

// reader carves fuzz bytes into values; exhausted, it yields zeros.
type reader struct{ b []byte }

func (r *reader) u8() uint8 {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(r.u8())
	}
	return v
}

func (r *reader) take(n int) []byte {
	out := make([]byte, n)
	copy(out, r.b)
	r.b = r.b[min(n, len(r.b)):]
	return out
}

// addr returns an address the codec must carry: zero, IPv4 or IPv6,
// nudged away from the destinations ParseAddr rejects.
func (r *reader) addr() netip.AddrPort {
	mode := r.u8() % 3
	port := uint16(r.u8())<<8 | uint16(r.u8())
	if port == 0 {
		port = 1
	}
	var ip netip.Addr
	switch mode {
	case 0:
		return netip.AddrPort{}
	case 1:
		ip = netip.AddrFrom4([4]byte(r.take(4)))
	default:
		ip = netip.AddrFrom16([16]byte(r.take(16))).Unmap()
	}
	if ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		b := ip.AsSlice()
		b[0] = 10
		ip, _ = netip.AddrFromSlice(b)
	}
	return netip.AddrPortFrom(ip, port)
}

// FuzzRoundTrip builds a frame of any type from structured input with the
// encoder, parses it, and checks every value comes back unchanged. kind
// picks an entry of frameKinds.
func FuzzRoundTrip(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, kind, flags, hops, hopLimit uint8, cluster, origin, epoch, seq, packet uint64, blob []byte) {
		k := &frameKinds[int(kind)%len(frameKinds)]
		h := codec.Header{
			Type: k.typ, Hops: hops, HopLimit: hopLimit,
			Cluster: cluster, Origin: origin, Epoch: epoch, Seq: seq, Packet: packet,
		}
		if flags&1 != 0 {
			h.Flags |= codec.FlagAuth
		}
		if flags&2 != 0 && h.Type == codec.TypeData {
			h.Flags |= codec.FlagRetransmit
		}
		r := &reader{b: blob}
		frame, count, check := k.build(t, r, h, codec.MinFrameSize+int(flags>>2)*1024)
		if h.Flags&codec.FlagAuth != 0 {
			frame = append(frame, r.take(codec.TagLen)...)
		}

		fr, err := codec.ParseFrame(frame)
		if err != nil {
			t.Fatalf("encoder output rejected: %v\n%x", err, frame)
		}
		want := h
		want.PayloadLen = uint16(len(fr.Payload))
		want.Count = count
		if fr.Header != want {
			t.Fatalf("header\n got %+v\nwant %+v", fr.Header, want)
		}
		check(t, fr.Payload)
	})
}

func FuzzParseRecord(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := codec.ParseRecord(b)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if n > len(b) || n != codec.RecordLen(len(r.Key)) || codec.ValidateKey(r.Key) != nil {
			t.Fatalf("n %d, len(b) %d, key %d bytes", n, len(b), len(r.Key))
		}
		if cap(r.Key) != len(r.Key) {
			t.Fatal("key view can grow into the next record")
		}
		if got := codec.AppendRecord(nil, r.Key, r.Flags); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
		}
	})
}

// FuzzRecordIter checks the iterator and ValidateRecords agree on any
// payload and count, and that iteration re-encodes what it consumed.
func FuzzRecordIter(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, payload []byte, count uint16) {
		verr := codec.ValidateRecords(payload, count)
		it := codec.NewRecordIter(payload, count)
		var out []byte
		n := 0
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			out = codec.AppendRecord(out, r.Key, r.Flags)
			n++
		}
		if it.Err() != verr {
			t.Fatalf("RecordIter %v, ValidateRecords %v", it.Err(), verr)
		}
		if !bytes.Equal(out, payload[:len(out)]) {
			t.Fatal("iterated records do not re-encode to the payload prefix")
		}
		if verr != nil {
			checkSentinel(t, verr)
			return
		}
		if n != int(count) || len(out) != len(payload) {
			t.Fatalf("clean end after %d of %d records, %d of %d bytes", n, count, len(out), len(payload))
		}
	})
}

func FuzzParseAlive(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, n, err := codec.ParseAlive(b)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if got := codec.AppendAlive(nil, &a); n != codec.AliveFixedLen || !bytes.Equal(got, b[:n]) {
			t.Fatalf("alive re-encoding differs\n in  %x\n out %x", b[:n], got)
		}
		for rest := b[n:]; len(rest) > 0; rest = rest[codec.DigestEntryLen:] {
			e, m, err := codec.ParseDigestEntry(rest)
			if err != nil {
				checkSentinel(t, err)
				if len(rest) >= codec.DigestEntryLen && errors.Is(err, codec.ErrShort) {
					t.Fatal("ErrShort on a full-length entry")
				}
				return
			}
			if e.State.String() == "" || e.State < codec.StateAlive || e.State > codec.StateLeft {
				t.Fatalf("accepted state %d", e.State)
			}
			if got := codec.AppendDigestEntry(nil, &e); m != codec.DigestEntryLen || !bytes.Equal(got, rest[:m]) {
				t.Fatalf("entry re-encoding differs\n in  %x\n out %x", rest[:m], got)
			}
		}
	})
}

func FuzzParseNack(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		nk, n, err := codec.ParseNack(b)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if got := codec.AppendNack(nil, &nk); n != codec.NackFixedLen || !bytes.Equal(got, b[:n]) {
			t.Fatalf("nack re-encoding differs\n in  %x\n out %x", b[:n], got)
		}
		for rest := b[n:]; len(rest) > 0; rest = rest[codec.SeqRangeLen:] {
			r, m, err := codec.ParseSeqRange(rest)
			if err != nil {
				checkSentinel(t, err)
				return
			}
			if r.First == 0 || r.First > r.Last {
				t.Fatalf("accepted range %+v", r)
			}
			if got := codec.AppendSeqRange(nil, r); m != codec.SeqRangeLen || !bytes.Equal(got, rest[:m]) {
				t.Fatalf("range re-encoding differs\n in  %x\n out %x", rest[:m], got)
			}
		}
	})
}

func FuzzParseLeave(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		inc, n, err := codec.ParseLeave(b)
		if err != nil {
			checkSentinel(t, err)
			if len(b) >= codec.LeaveLen {
				t.Fatalf("rejected %d bytes: %v", len(b), err)
			}
			return
		}
		if got := codec.AppendLeave(nil, inc); n != codec.LeaveLen || !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
		}
	})
}

func FuzzParseAck(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, n, err := codec.ParseAck(b)
		if err != nil {
			checkSentinel(t, err)
			if len(b) >= codec.AckLen {
				t.Fatalf("rejected %d bytes: %v", len(b), err)
			}
			return
		}
		if got := codec.AppendAck(nil, &a); n != codec.AckLen || !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
		}
	})
}

func FuzzParseAddr(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, n, err := codec.ParseAddr(b)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if n != codec.AddrLen {
			t.Fatalf("n = %d", n)
		}
		if ap.IsValid() {
			ip := ap.Addr()
			if ap.Port() == 0 || ip.IsUnspecified() || ip.IsMulticast() || ip.Is4In6() || ip.Zone() != "" ||
				ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				t.Fatalf("accepted unusable address %v", ap)
			}
		}
		if got := codec.AppendAddr(nil, ap); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
		}
	})
}
