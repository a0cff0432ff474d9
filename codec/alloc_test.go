package codec

import (
	"net/netip"
	"testing"
)

// TestZeroAllocs gates every encode and decode path at 0 allocations.
func TestZeroAllocs(t *testing.T) {
	g := goldenFrames()
	full := fullDataFrame(16, DefaultMaxFrameSize)
	buf := make([]byte, 0, MaxFrameSize)
	keys := make([][]byte, 200)
	for i := range keys {
		keys[i] = testKey(i, 16)
	}
	var sink int
	var aad [HeaderLen]byte
	entry := testDigest[1]
	alive := Alive{Incarnation: 1, HWM: 2, Addr: testAddr6}
	nack := Nack{Origin: 1, Epoch: 2}
	var fb FrameBuilder
	h := testHeader
	h.Type = TypeData

	gates := []struct {
		name string
		fn   func()
	}{
		{"AppendHeader", func() { buf = AppendHeader(buf[:0], &testHeader) }},
		{"ParseHeader", func() { _, n, _ := ParseHeader(full); sink += n }},
		{"Builder Reset/Add/Finish full frame", func() {
			fb.Reset(buf[:0], h, DefaultMaxFrameSize)
			for i := 0; fb.Add(keys[i], RecordExact); i++ {
			}
			sink += len(fb.Finish())
		}},
		{"RecordIter full frame", func() {
			it := NewRecordIter(full[HeaderLen:], fullCount(full))
			for r, ok := it.Next(); ok; r, ok = it.Next() {
				sink += len(r.Key)
			}
		}},
		{"ValidateRecords", func() { _ = ValidateRecords(full[HeaderLen:], fullCount(full)) }},
		{"ParseFrame DATA", func() { f, _ := ParseFrame(full); sink += len(f.Payload) }},
		{"ParseFrame all types", func() {
			for _, name := range []string{"data", "data_retransmit", "data_auth", "alive", "leave", "nack", "hwm"} {
				f, _ := ParseFrame(g[name])
				sink += len(f.Payload)
			}
		}},
		{"AppendAlive+ParseAlive", func() {
			buf = AppendAlive(buf[:0], &alive)
			a, _, _ := ParseAlive(buf)
			sink += int(a.HWM)
		}},
		{"AppendDigestEntry+ParseDigestEntry", func() {
			buf = AppendDigestEntry(buf[:0], &entry)
			e, _, _ := ParseDigestEntry(buf)
			sink += int(e.ID)
		}},
		{"AppendAddr+ParseAddr", func() {
			buf = AppendAddr(buf[:0], testAddr4)
			ap, _, _ := ParseAddr(buf)
			sink += int(ap.Port())
			buf = AppendAddr(buf[:0], netip.AddrPort{})
			ap, _, _ = ParseAddr(buf)
			sink += int(ap.Port())
		}},
		{"AppendNack+ParseNack+ranges", func() {
			buf = AppendNack(buf[:0], &nack)
			buf = AppendSeqRange(buf, SeqRange{First: 1, Last: 2})
			n, m, _ := ParseNack(buf)
			r, _, _ := ParseSeqRange(buf[m:])
			sink += int(n.Origin + r.Last)
		}},
		{"AppendLeave+ParseLeave", func() {
			buf = AppendLeave(buf[:0], 3)
			inc, _, _ := ParseLeave(buf)
			sink += int(inc)
		}},
		{"ParseRecord+AppendRecord", func() {
			buf = AppendRecord(buf[:0], keys[0], RecordPrefix)
			r, _, _ := ParseRecord(buf)
			sink += len(r.Key)
		}},
		{"FinishFrame+SetHops+AAD", func() {
			buf = AppendHeader(buf[:0], &testHeader)
			buf = AppendLeave(buf, 1)
			_ = FinishFrame(buf, 0)
			SetHops(buf, 2)
			HeaderAAD(&aad, buf)
			sink += len(AppendAAD(buf[len(buf):], buf))
		}},
		{"errors", func() {
			_, err := ParseFrame(full[:HeaderLen+1])
			_, _, err2 := ParseRecord(nil)
			if err != nil && err2 != nil {
				sink++
			}
		}},
		{"ClusterHash", func() { sink += int(ClusterHash("production-eu-west")) }},
	}
	for _, gate := range gates {
		if n := testing.AllocsPerRun(100, gate.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", gate.name, n)
		}
	}
	if sink == 0 {
		t.Fatal("gates did no work")
	}
}

// fullDataFrame builds a DATA frame filled to budget with keyLen-byte keys.
func fullDataFrame(keyLen, budget int) []byte {
	var fb FrameBuilder
	h := testHeader
	h.Type = TypeData
	fb.Reset(make([]byte, 0, budget), h, budget)
	for i := 0; fb.Add(testKey(i, keyLen), RecordExact); i++ {
	}
	return fb.Finish()
}

func fullCount(frame []byte) uint16 {
	h, _, _ := ParseHeader(frame)
	return h.Count
}
