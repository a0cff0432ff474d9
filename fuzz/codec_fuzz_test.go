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
	codec.ErrBadHash, codec.ErrBadAddr, codec.ErrBadRange, codec.ErrBadState,
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
	out := codec.AppendHeader(nil, &f.Header)
	p := f.Payload
	switch f.Header.Type {
	case codec.TypeData:
		it := codec.NewRecordIter(p, f.Header.Count)
		for r, ok := it.Next(); ok; r, ok = it.Next() {
			out = codec.AppendRecord(out, r.Key, r.Flags)
		}
		if it.Err() != nil {
			t.Fatalf("ParseFrame accepted records RecordIter rejects: %v", it.Err())
		}
	case codec.TypeAlive:
		a, n, err := codec.ParseAlive(p)
		if err != nil {
			t.Fatalf("ParseFrame accepted an ALIVE ParseAlive rejects: %v", err)
		}
		out = codec.AppendAlive(out, &a)
		for i := 0; i < int(f.Header.Count); i++ {
			e, m, err := codec.ParseDigestEntry(p[n:])
			if err != nil {
				t.Fatalf("digest entry %d: %v", i, err)
			}
			out = codec.AppendDigestEntry(out, &e)
			n += m
		}
	case codec.TypeLeave:
		inc, _, err := codec.ParseLeave(p)
		if err != nil {
			t.Fatal(err)
		}
		out = codec.AppendLeave(out, inc)
	case codec.TypeNack:
		nk, n, err := codec.ParseNack(p)
		if err != nil {
			t.Fatal(err)
		}
		out = codec.AppendNack(out, &nk)
		for i := 0; i < int(f.Header.Count); i++ {
			r, m, err := codec.ParseSeqRange(p[n:])
			if err != nil {
				t.Fatalf("range %d: %v", i, err)
			}
			out = codec.AppendSeqRange(out, r)
			n += m
		}
	case codec.TypeHWM:
	case codec.TypeChallenge, codec.TypeResponse:
		c, _, err := codec.ParseChallenge(p)
		if err != nil {
			t.Fatal(err)
		}
		out = codec.AppendChallenge(out, &c)
	default:
		t.Fatalf("ParseFrame accepted type %v", f.Header.Type)
	}
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
// encoder, parses it, and checks every value comes back unchanged.
func FuzzRoundTrip(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, kind, flags, hops, hopLimit uint8, cluster, origin, epoch, seq, packet uint64, blob []byte) {
		h := codec.Header{
			Type: codec.FrameType(kind%5 + 1), Hops: hops, HopLimit: hopLimit,
			Cluster: cluster, Origin: origin, Epoch: epoch, Seq: seq, Packet: packet,
		}
		if flags&1 != 0 {
			h.Flags |= codec.FlagAuth
		}
		if flags&2 != 0 && h.Type == codec.TypeData {
			h.Flags |= codec.FlagRetransmit
		}
		r := &reader{b: blob}
		var (
			frame   []byte
			keys    [][]byte
			rflags  []codec.RecordFlags
			alive   codec.Alive
			entries []codec.DigestEntry
			leave   uint64
			nack    codec.Nack
			ranges  []codec.SeqRange
		)
		switch h.Type {
		case codec.TypeData:
			var fb codec.FrameBuilder
			budget := codec.MinFrameSize + int(flags>>2)*1024
			fb.Reset(make([]byte, 0, budget), h, budget)
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
			frame = fb.Finish()
			if fb.Len() > budget {
				t.Fatalf("builder exceeded budget: %d > %d", fb.Len(), budget)
			}
		case codec.TypeAlive:
			alive = codec.Alive{Incarnation: r.u64(), HWM: r.u64(), Addr: r.addr()}
			n := int(r.u8()) % (codec.MaxDigestEntries(codec.DefaultMaxFrameSize, true) + 1)
			frame = codec.AppendAlive(codec.AppendHeader(nil, &h), &alive)
			for range n {
				e := codec.DigestEntry{ID: r.u64(), Epoch: r.u64(), Incarnation: r.u64(), Addr: r.addr(), State: codec.MemberState(1 + r.u8()%4)}
				entries = append(entries, e)
				frame = codec.AppendDigestEntry(frame, &e)
			}
		case codec.TypeLeave:
			leave = r.u64()
			frame = codec.AppendLeave(codec.AppendHeader(nil, &h), leave)
		case codec.TypeNack:
			nack = codec.Nack{Origin: r.u64(), Epoch: r.u64()}
			frame = codec.AppendNack(codec.AppendHeader(nil, &h), &nack)
			for n := 1 + int(r.u8())%codec.MaxNackRanges(codec.DefaultMaxFrameSize, true); len(ranges) < n; {
				first := max(r.u64()>>1, 1)
				rg := codec.SeqRange{First: first, Last: first + r.u64()>>1}
				ranges = append(ranges, rg)
				frame = codec.AppendSeqRange(frame, rg)
			}
		case codec.TypeHWM:
			frame = codec.AppendHeader(nil, &h)
		}
		if h.Type != codec.TypeData {
			count := len(entries) + len(ranges)
			if err := codec.FinishFrame(frame, uint16(count)); err != nil {
				t.Fatal(err)
			}
		}
		if h.Flags&codec.FlagAuth != 0 {
			frame = append(frame, r.take(codec.TagLen)...)
		}

		fr, err := codec.ParseFrame(frame)
		if err != nil {
			t.Fatalf("encoder output rejected: %v\n%x", err, frame)
		}
		want := h
		want.PayloadLen = uint16(len(fr.Payload))
		want.Count = uint16(len(keys) + len(entries) + len(ranges))
		if fr.Header != want {
			t.Fatalf("header\n got %+v\nwant %+v", fr.Header, want)
		}
		p := fr.Payload
		switch h.Type {
		case codec.TypeData:
			it := codec.NewRecordIter(p, fr.Header.Count)
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
		case codec.TypeAlive:
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
		case codec.TypeLeave:
			if inc, _, _ := codec.ParseLeave(p); inc != leave {
				t.Fatalf("leave %d, want %d", inc, leave)
			}
		case codec.TypeNack:
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
