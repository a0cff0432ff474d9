package fuzz

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// Seeds are built by the encoder itself, so they start the fuzzer on real
// frames of every type. -gen-corpus rewrites testdata/fuzz/ from them:
//
//	go test ./fuzz -run TestGenerateCorpus -gen-corpus
var genCorpus = flag.Bool("gen-corpus", false, "rewrite testdata/fuzz seed corpora from the encoder")

var seedHeader = codec.Header{
	HopLimit: codec.DefaultHopLimit,
	Cluster:  codec.ClusterHash("fuzz"),
	Origin:   0x0102030405060708,
	Epoch:    0x1112131415161718,
	Seq:      42,
	Packet:   77,
}

var (
	seedAddr4 = netip.MustParseAddrPort("192.0.2.1:7946")
	seedAddr6 = netip.MustParseAddrPort("[2001:db8::1]:7947")
	seedTag   = []byte("0123456789abcdef")
)

var seedDigest = []codec.DigestEntry{
	{ID: 1, Epoch: 2, Incarnation: 3, Addr: seedAddr4, State: codec.StateAlive},
	{ID: 4, Epoch: 5, Incarnation: 6, Addr: seedAddr6, State: codec.StateSuspect},
	{ID: 7, Epoch: 8, Incarnation: 9, State: codec.StateLeft}, // no address
}

func seedData(h codec.Header, keys ...string) []byte {
	h.Type = codec.TypeData
	var fb codec.FrameBuilder
	fb.Reset(make([]byte, 0, codec.MaxFrameSize), h, codec.DefaultMaxFrameSize)
	for i, k := range keys {
		flags := codec.RecordExact
		if i%2 == 1 {
			flags = codec.RecordPrefix
		}
		fb.Add([]byte(k), flags)
	}
	return fb.Finish()
}

func seedFrame(h codec.Header, t codec.FrameType, count uint16, payload []byte) []byte {
	h.Type = t
	b := codec.AppendHeader(nil, &h)
	b = append(b, payload...)
	if err := codec.FinishFrame(b, count); err != nil {
		panic(err)
	}
	return b
}

func seedAlivePayload(entries []codec.DigestEntry) []byte {
	p := codec.AppendAlive(nil, &codec.Alive{Incarnation: 5, HWM: 41, Addr: seedAddr4})
	for i := range entries {
		p = codec.AppendDigestEntry(p, &entries[i])
	}
	return p
}

func seedNackPayload(ranges ...codec.SeqRange) []byte {
	p := codec.AppendNack(nil, &codec.Nack{Origin: 0xC1, Epoch: 0xD1})
	for _, r := range ranges {
		p = codec.AppendSeqRange(p, r)
	}
	return p
}

// seedFrames returns valid frames of every type in frameKinds, plain and
// sealed, plus DATA's flag variants and a full DATA frame.
func seedFrames() [][]byte {
	auth, retrans := seedHeader, seedHeader
	auth.Flags = codec.FlagAuth
	retrans.Flags, retrans.Hops = codec.FlagRetransmit, 2
	var out [][]byte
	for _, k := range frameKinds {
		for i, s := range k.seeds() {
			out = append(out, seedFrame(seedHeader, k.typ, s.count, s.payload))
			if i == 0 {
				out = append(out, append(seedFrame(auth, k.typ, s.count, s.payload), seedTag...))
			}
		}
	}
	full := make([]string, 80)
	for i := range full {
		full[i] = fmt.Sprintf("key-%012d", i)
	}
	hwm := seedHeader
	hwm.Seq = 1234
	return append(out,
		seedData(retrans, "user:42"),
		seedData(seedHeader, full...),
		seedFrame(hwm, codec.TypeHWM, 0, nil),
	)
}

func seedRecords() [][]byte {
	return [][]byte{
		codec.AppendRecord(nil, []byte("user:42"), codec.RecordExact),
		codec.AppendRecord(nil, []byte("tenant/7/"), codec.RecordPrefix),
		codec.AppendRecord(nil, make([]byte, codec.MaxKeyLen), codec.RecordExact),
		codec.AppendRecord(codec.AppendRecord(nil, []byte("a"), codec.RecordExact), []byte("b"), codec.RecordPrefix),
	}
}

func seedAddrs() [][]byte {
	var out [][]byte
	for _, ap := range []netip.AddrPort{{}, seedAddr4, seedAddr6, netip.MustParseAddrPort("[::ffff:0.0.0.0]:1")} {
		out = append(out, codec.AppendAddr(nil, ap))
	}
	return out
}

// roundTripSeed is one FuzzRoundTrip input.
type roundTripSeed struct {
	kind, flags, hops, hopLimit         uint8
	cluster, origin, epoch, seq, packet uint64
	blob                                []byte
}

func (s roundTripSeed) args() []any {
	return []any{s.kind, s.flags, s.hops, s.hopLimit, s.cluster, s.origin, s.epoch, s.seq, s.packet, s.blob}
}

func roundTripSeeds() []roundTripSeed {
	blob := binary.BigEndian.AppendUint64(nil, 0x0011223344556677)
	blob = append(blob, "some keys and addresses for the reader to carve up into items"...)
	var out []roundTripSeed
	for kind := range uint8(len(frameKinds)) {
		out = append(out,
			roundTripSeed{kind: kind, hopLimit: 4, cluster: 1, origin: 2, epoch: 3, seq: 4, packet: 5, blob: blob},
			roundTripSeed{kind: kind, flags: 3, hops: 1, hopLimit: 4, cluster: ^uint64(0), origin: 9, epoch: 8, seq: 7, packet: 6, blob: blob[:9]},
		)
	}
	return out
}

// corpora lists every target's seeds, as the fuzz target's arguments.
func corpora() map[string][][]any {
	one := func(bs [][]byte) [][]any {
		out := make([][]any, len(bs))
		for i, b := range bs {
			out[i] = []any{b}
		}
		return out
	}
	frames := seedFrames()
	var headers [][]byte
	headers = append(headers, frames...)
	var rt [][]any
	for _, s := range roundTripSeeds() {
		rt = append(rt, s.args())
	}
	recs := seedRecords()
	iter := make([][]any, 0, len(recs))
	for i, r := range recs {
		iter = append(iter, []any{r, uint16(1 + i%2)})
	}
	return map[string][][]any{
		"FuzzParseFrame":  one(frames),
		"FuzzParseHeader": one(headers),
		"FuzzRoundTrip":   rt,
		"FuzzParseRecord": one(recs),
		"FuzzRecordIter":  iter,
		"FuzzParseAlive":  one([][]byte{seedAlivePayload(seedDigest), seedAlivePayload(nil)}),
		"FuzzParseNack":   one([][]byte{seedNackPayload(codec.SeqRange{First: 1, Last: 1}, codec.SeqRange{First: 2, Last: ^uint64(0)}), seedNackPayload()}),
		"FuzzParseLeave":  one([][]byte{codec.AppendLeave(nil, 6), codec.AppendLeave(nil, ^uint64(0))}),
		"FuzzParseAck": one([][]byte{
			codec.AppendAck(nil, &codec.Ack{Origin: 0xC1, Epoch: 0xD1, Cum: 40}),
			codec.AppendAck(nil, &codec.Ack{Origin: ^uint64(0), Epoch: ^uint64(0), Cum: ^uint64(0)}),
		}),
		"FuzzParseAddr": one(append(seedAddrs(), seedAlivePayload(seedDigest)[16:] /* the address inside ALIVE, then more bytes */)),
	}
}

func addSeeds(f *testing.F) {
	for _, args := range corpora()[f.Name()] {
		f.Add(args...)
	}
}

// TestGenerateCorpus writes the seed corpora in the go test fuzz v1 file
// format when run with -gen-corpus; otherwise it checks every target has
// committed seeds.
func TestGenerateCorpus(t *testing.T) {
	for name, seeds := range corpora() {
		dir := filepath.Join("testdata", "fuzz", name)
		if !*genCorpus {
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) < len(seeds) {
				t.Errorf("%s: %d committed seeds, want >= %d (run with -gen-corpus): %v", dir, len(entries), len(seeds), err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range seeds {
			text := "go test fuzz v1\n"
			for _, a := range args {
				text += encodeArg(a) + "\n"
			}
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func encodeArg(a any) string {
	switch v := a.(type) {
	case []byte:
		return "[]byte(" + strconv.Quote(string(v)) + ")"
	case uint8:
		return fmt.Sprintf("byte(%d)", v)
	case uint16:
		return fmt.Sprintf("uint16(%d)", v)
	case uint64:
		return fmt.Sprintf("uint64(%d)", v)
	}
	panic(fmt.Sprintf("encodeArg: %T", a))
}
