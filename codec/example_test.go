package codec_test

import (
	"fmt"
	"net/netip"

	"github.com/warpmesh/warpmesh/codec"
)

// Build a DATA frame with a FrameBuilder, then parse it and walk its
// records as a receiver does.
func Example() {
	buf := make([]byte, 0, codec.DefaultMaxFrameSize) // allocated once per loop, reused per frame
	var fb codec.FrameBuilder
	fb.Reset(buf, codec.Header{
		Type:     codec.TypeData,
		HopLimit: codec.DefaultHopLimit,
		Cluster:  codec.ClusterHash("prod"),
		Origin:   0x1234,
		Epoch:    1,
		Seq:      1,
		Packet:   1,
	}, codec.DefaultMaxFrameSize)
	fb.Add([]byte("user:42"), codec.RecordExact)
	fb.Add([]byte("session:"), codec.RecordPrefix)
	frame := fb.Finish()

	f, err := codec.ParseFrame(frame)
	if err != nil {
		fmt.Println("drop:", err)
		return
	}
	fmt.Println(f.Header.Type, "seq", f.Header.Seq, "records", f.Header.Count, "bytes", len(frame))
	it := codec.NewRecordIter(f.Payload, f.Header.Count)
	for r, ok := it.Next(); ok; r, ok = it.Next() {
		fmt.Printf("%s exact=%v\n", r.Key, r.Flags == codec.RecordExact)
	}
	if err := it.Err(); err != nil {
		fmt.Println("malformed:", err)
	}
	// Output:
	// DATA seq 1 records 2 bytes 95
	// user:42 exact=true
	// session: exact=false
}

// Pack records until the frame is full, then start the next frame.
func ExampleFrameBuilder_Add() {
	keys := make([][]byte, 200)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user:%012d", i) // 17-byte keys, 29-byte records
	}
	buf := make([]byte, 0, codec.DefaultMaxFrameSize)
	var fb codec.FrameBuilder
	h := codec.Header{Type: codec.TypeData, Seq: 1}
	fb.Reset(buf, h, codec.DefaultMaxFrameSize)
	for _, k := range keys {
		if !fb.Add(k, codec.RecordExact) {
			frame := fb.Finish()
			fmt.Println("send seq", h.Seq, "records", fb.Count(), "bytes", len(frame))
			h.Seq++
			fb.Reset(buf, h, codec.DefaultMaxFrameSize)
			fb.Add(k, codec.RecordExact)
		}
	}
	fmt.Println("send seq", h.Seq, "records", fb.Count(), "bytes", len(fb.Finish()))
	// Output:
	// send seq 1 records 46 bytes 1390
	// send seq 2 records 46 bytes 1390
	// send seq 3 records 46 bytes 1390
	// send seq 4 records 46 bytes 1390
	// send seq 5 records 16 bytes 520
}

// Build an ALIVE heartbeat: header, fixed part, digest entries, then
// FinishFrame patches the count and payload length.
func ExampleAppendAlive() {
	frame := codec.AppendHeader(nil, &codec.Header{Type: codec.TypeAlive, Origin: 7, Epoch: 1})
	frame = codec.AppendAlive(frame, &codec.Alive{
		Incarnation: 3,
		HWM:         120,
		Addr:        netip.MustParseAddrPort("127.0.0.1:7946"),
	})
	members := []codec.DigestEntry{
		{ID: 8, Epoch: 1, Incarnation: 1, Addr: netip.MustParseAddrPort("127.0.0.2:7946"), State: codec.StateAlive},
		{ID: 9, Epoch: 4, Incarnation: 2, Addr: netip.MustParseAddrPort("[::1]:7947"), State: codec.StateSuspect},
	}
	for i := range members {
		frame = codec.AppendDigestEntry(frame, &members[i])
	}
	if err := codec.FinishFrame(frame, uint16(len(members))); err != nil {
		fmt.Println(err)
		return
	}

	f, err := codec.ParseFrame(frame)
	if err != nil {
		fmt.Println("drop:", err)
		return
	}
	a, n, _ := codec.ParseAlive(f.Payload)
	fmt.Println("from", a.Addr, "incarnation", a.Incarnation, "hwm", a.HWM)
	for b := f.Payload[n:]; len(b) > 0; b = b[codec.DigestEntryLen:] {
		e, _, _ := codec.ParseDigestEntry(b)
		fmt.Println("member", e.ID, e.Addr, e.State)
	}
	// Output:
	// from 127.0.0.1:7946 incarnation 3 hwm 120
	// member 8 127.0.0.2:7946 alive
	// member 9 [::1]:7947 suspect
}

// Ask an origin to resend DATA seqs 3-5 and 9.
func ExampleAppendNack() {
	frame := codec.AppendHeader(nil, &codec.Header{Type: codec.TypeNack, Origin: 7, Epoch: 1})
	frame = codec.AppendNack(frame, &codec.Nack{Origin: 0x1234, Epoch: 1})
	frame = codec.AppendSeqRange(frame, codec.SeqRange{First: 3, Last: 5})
	frame = codec.AppendSeqRange(frame, codec.SeqRange{First: 9, Last: 9})
	if err := codec.FinishFrame(frame, 2); err != nil {
		fmt.Println(err)
		return
	}
	f, err := codec.ParseFrame(frame)
	fmt.Println(f.Header.Type, f.Header.Count, len(frame), err)
	// Output: NACK 2 104 <nil>
}

// A malformed datagram yields a sentinel error to count by reason.
func ExampleParseFrame() {
	_, err := codec.ParseFrame([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n padding padding padding padding"))
	fmt.Println(err, err == codec.ErrBadMagic)
	// Output: codec: bad magic true
}

// Relays bump the hop count in place; the AEAD associated data is the
// header with hops zeroed, so the tag stays valid.
func ExampleSetHops() {
	frame := codec.AppendHeader(nil, &codec.Header{Type: codec.TypeHWM, HopLimit: codec.DefaultHopLimit, Seq: 99})
	var aad [codec.HeaderLen]byte
	codec.HeaderAAD(&aad, frame)
	h, _, _ := codec.ParseHeader(frame)
	if h.Hops < h.HopLimit {
		codec.SetHops(frame, h.Hops+1)
	}
	var aad2 [codec.HeaderLen]byte
	codec.HeaderAAD(&aad2, frame)
	h, _, _ = codec.ParseHeader(frame)
	fmt.Println("hops", h.Hops, "aad unchanged", aad == aad2)
	// Output: hops 1 aad unchanged true
}

// A RESPONSE echoes a CHALLENGE's payload unchanged; only the challenger
// reads the time and cookie back.
func ExampleAppendChallenge() {
	c := codec.Challenge{Time: 1700000000000, Addr: netip.MustParseAddrPort("10.0.0.7:7946"), Cookie: [codec.CookieLen]byte{0xc0, 0x0c}}
	h := codec.Header{Type: codec.TypeChallenge, HopLimit: 1, PayloadLen: codec.ChallengeLen}
	challenge := codec.AppendChallenge(codec.AppendHeader(nil, &h), &c)

	f, _ := codec.ParseFrame(challenge)
	h.Type = codec.TypeResponse
	response := append(codec.AppendHeader(nil, &h), f.Payload...)

	r, _ := codec.ParseFrame(response)
	echo, _, _ := codec.ParseChallenge(r.Payload)
	fmt.Println(r.Header.Type, len(response), echo == c)
	// Output: RESPONSE 100 true
}
