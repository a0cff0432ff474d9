package codec

import (
	"fmt"
	"testing"
)

// Encode: fill a DATA frame to the default 1400-byte budget.
// Decode: ParseFrame (header + full validation) then iterate the records,
// as a receiver that validates before applying does; and the single pass
// ParseHeader + RecordIter.
func BenchmarkEncodeData(b *testing.B) {
	for _, keyLen := range []int{16, 64} {
		b.Run(fmt.Sprintf("key=%d", keyLen), func(b *testing.B) {
			keys := make([][]byte, DefaultMaxFrameSize/RecordLen(keyLen)+1)
			for i := range keys {
				keys[i] = testKey(i, keyLen)
			}
			buf := make([]byte, 0, DefaultMaxFrameSize)
			h := testHeader
			h.Type = TypeData
			var fb FrameBuilder
			records := 0
			b.ReportAllocs()
			for b.Loop() {
				fb.Reset(buf, h, DefaultMaxFrameSize)
				for i := 0; fb.Add(keys[i], RecordExact); i++ {
				}
				records += fb.Count()
				buf = fb.Finish()
			}
			b.SetBytes(int64(len(buf)))
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(records)/float64(b.N), "records/op")
		})
	}
}

func BenchmarkDecodeData(b *testing.B) {
	for _, keyLen := range []int{16, 64} {
		frame := fullDataFrame(keyLen, DefaultMaxFrameSize)
		b.Run(fmt.Sprintf("ParseFrame+iter/key=%d", keyLen), func(b *testing.B) {
			records, sink := 0, 0
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				f, err := ParseFrame(frame)
				if err != nil {
					b.Fatal(err)
				}
				it := NewRecordIter(f.Payload, f.Header.Count)
				for r, ok := it.Next(); ok; r, ok = it.Next() {
					sink += len(r.Key)
					records++
				}
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			_ = sink
		})
		b.Run(fmt.Sprintf("ParseHeader+iter/key=%d", keyLen), func(b *testing.B) {
			records, sink := 0, 0
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				h, n, err := ParseHeader(frame)
				if err != nil {
					b.Fatal(err)
				}
				it := NewRecordIter(frame[n:], h.Count)
				for r, ok := it.Next(); ok; r, ok = it.Next() {
					sink += len(r.Key)
					records++
				}
				if it.Err() != nil {
					b.Fatal(it.Err())
				}
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			_ = sink
		})
	}
}

func BenchmarkParseHeader(b *testing.B) {
	frame := fullDataFrame(16, DefaultMaxFrameSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseHeader(frame); err != nil {
			b.Fatal(err)
		}
	}
}
