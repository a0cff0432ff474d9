package codec

import (
	"bytes"
	"fmt"
	"testing"
)

// testKey returns a distinct key of exactly n bytes (n >= 1).
func testKey(i, n int) []byte {
	k := bytes.Repeat([]byte{'k'}, n)
	s := fmt.Sprintf("%d", i)
	copy(k[max(n-len(s), 0):], s)
	return k
}

func TestBuilderFillsBudget(t *testing.T) {
	for _, budget := range []int{DefaultMaxFrameSize, MinFrameSize, MaxFrameSize} {
		for _, auth := range []bool{false, true} {
			for _, keyLen := range []int{1, 16, 64, 1000} {
				t.Run(fmt.Sprintf("budget=%d/auth=%v/key=%d", budget, auth, keyLen), func(t *testing.T) {
					testBuilderFill(t, budget, auth, keyLen)
				})
			}
		}
	}
}

func testBuilderFill(t *testing.T, budget int, auth bool, keyLen int) {
	h := testHeader
	h.Type = TypeData
	tag := 0
	if auth {
		h.Flags = FlagAuth
		tag = TagLen
	}
	var fb FrameBuilder
	fb.Reset(make([]byte, 0, budget), h, budget)
	if fb.Len() != HeaderLen || fb.Count() != 0 || fb.Remaining() != budget-tag-HeaderLen {
		t.Fatalf("after Reset: Len %d Count %d Remaining %d", fb.Len(), fb.Count(), fb.Remaining())
	}
	var keys [][]byte
	for {
		k := testKey(len(keys), keyLen)
		fits := fb.Fits(len(k))
		before := fb.Len()
		if !fb.Add(k, RecordExact) {
			if fits {
				t.Fatal("Fits said yes, Add said no")
			}
			if fb.Len() != before {
				t.Fatal("a failed Add wrote bytes")
			}
			break
		}
		if !fits {
			t.Fatal("Fits said no, Add said yes")
		}
		keys = append(keys, k)
	}
	want := (budget - tag - HeaderLen) / RecordLen(keyLen) // records of equal size pack exactly
	if len(keys) != want || fb.Count() != want {
		t.Fatalf("packed %d records, want %d", len(keys), want)
	}
	if fb.Len() > budget-tag || fb.Len()+RecordLen(keyLen) <= budget-tag {
		t.Fatalf("Len %d: over budget %d or another record would fit", fb.Len(), budget-tag)
	}
	frame := fb.Finish()
	if auth {
		frame = append(frame, testTag...) // sealing appends the tag within the budget
	}
	if len(frame) > budget {
		t.Fatalf("frame %d bytes > budget %d", len(frame), budget)
	}
	f, err := ParseFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	if int(f.Header.Count) != len(keys) || f.Header.Seq != h.Seq || f.Header.Origin != h.Origin {
		t.Fatalf("header %+v", f.Header)
	}
	it := NewRecordIter(f.Payload, f.Header.Count)
	i := 0
	for r, ok := it.Next(); ok; r, ok = it.Next() {
		if !bytes.Equal(r.Key, keys[i]) || r.Flags != RecordExact {
			t.Fatalf("record %d = %q, want %q", i, r.Key, keys[i])
		}
		i++
	}
	if it.Err() != nil || i != len(keys) {
		t.Fatalf("iterated %d of %d: %v", i, len(keys), it.Err())
	}
}

func TestBuilderMaxKeyAtMinFrameSize(t *testing.T) {
	var fb FrameBuilder
	h := testHeader
	h.Type, h.Flags = TypeData, FlagAuth
	fb.Reset(make([]byte, 0, MinFrameSize), h, MinFrameSize)
	if !fb.Add(make([]byte, MaxKeyLen), RecordPrefix) {
		t.Fatal("a MaxKeyLen record does not fit MinFrameSize with a tag")
	}
}

func TestBuilderRejects(t *testing.T) {
	var fb FrameBuilder
	if fb.Add([]byte("k"), RecordExact) || fb.Finish() != nil {
		t.Fatal("zero builder accepted a record or finished a frame")
	}
	fb.Reset(make([]byte, 0, DefaultMaxFrameSize), Header{Type: TypeData}, DefaultMaxFrameSize)
	for _, tt := range []struct {
		key   []byte
		flags RecordFlags
	}{
		{nil, RecordExact},
		{make([]byte, MaxKeyLen+1), RecordExact},
		{[]byte("k"), 0},
		{[]byte("k"), RecordExact | RecordPrefix},
	} {
		if fb.Add(tt.key, tt.flags) {
			t.Errorf("Add(len %d, flags %d) accepted", len(tt.key), tt.flags)
		}
	}
	if fb.Len() != HeaderLen || fb.Count() != 0 {
		t.Fatal("rejected Adds wrote bytes")
	}
}

func TestBuilderClampsBudget(t *testing.T) {
	var fb FrameBuilder
	fb.Reset(make([]byte, 0, 200), Header{Type: TypeData}, DefaultMaxFrameSize) // cap smaller than max
	for fb.Add([]byte("0123456789"), RecordExact) {
	}
	if fb.Len() > 200 {
		t.Fatalf("wrote %d bytes past cap 200", fb.Len())
	}
	buf := make([]byte, 0, MaxFrameSize+1000)
	fb.Reset(buf, Header{Type: TypeData}, MaxFrameSize+1000) // max above MaxFrameSize
	for fb.Add(make([]byte, MaxKeyLen), RecordExact) {
	}
	if fb.Len() > MaxFrameSize {
		t.Fatalf("frame %d > MaxFrameSize", fb.Len())
	}
	if _, err := ParseFrame(fb.Finish()); err != nil {
		t.Fatal(err)
	}
}

func TestBuilderReuse(t *testing.T) {
	var fb FrameBuilder
	buf := make([]byte, 0, DefaultMaxFrameSize)
	h := testHeader
	h.Type = TypeData
	fb.Reset(buf, h, DefaultMaxFrameSize)
	fb.Add([]byte("first"), RecordExact)
	fb.Finish()
	h.Seq++
	fb.Reset(buf, h, DefaultMaxFrameSize)
	fb.Add([]byte("second"), RecordPrefix)
	f, err := ParseFrame(fb.Finish())
	if err != nil || f.Header.Count != 1 || f.Header.Seq != h.Seq {
		t.Fatalf("%+v, %v", f.Header, err)
	}
	if r, _, _ := ParseRecord(f.Payload); string(r.Key) != "second" {
		t.Fatalf("key %q", r.Key)
	}
}
