package codec

import (
	"bytes"
	"testing"
)

func TestTreeEntryRoundTrip(t *testing.T) {
	e := TreeEntry{Origin: 1<<63 | 5, Epoch: 7, Seq: 1<<62 + 3}
	b := AppendTreeEntry(nil, &e)
	if len(b) != TreeEntryLen {
		t.Fatalf("len %d, want %d", len(b), TreeEntryLen)
	}
	got, n, err := ParseTreeEntry(b)
	if err != nil || n != TreeEntryLen || got != e {
		t.Fatalf("ParseTreeEntry = %+v, %d, %v; want %+v", got, n, err, e)
	}
	if _, _, err := ParseTreeEntry(b[:TreeEntryLen-1]); err != ErrShort {
		t.Fatalf("short entry: %v, want ErrShort", err)
	}
}

// TestTreeValidate: IHAVE, GRAFT and PRUNE carry exactly Count >= 1
// entries; IHAVE and GRAFT name a sequence, PRUNE none.
func TestTreeValidate(t *testing.T) {
	e1 := TreeEntry{Origin: 1, Epoch: 2, Seq: 3}
	e0 := TreeEntry{Origin: 1, Epoch: 2}
	for _, tc := range []struct {
		name    string
		typ     FrameType
		count   uint16
		entries []TreeEntry
		extra   int // trailing bytes
		want    error
	}{
		{"ihave", TypeIHave, 2, []TreeEntry{e1, e1}, 0, nil},
		{"graft", TypeGraft, 1, []TreeEntry{e1}, 0, nil},
		{"prune", TypePrune, 1, []TreeEntry{e0}, 0, nil},
		{"ihave empty", TypeIHave, 0, nil, 0, ErrBadTree},
		{"prune empty", TypePrune, 0, nil, 0, ErrBadTree},
		{"ihave seq 0", TypeIHave, 1, []TreeEntry{e0}, 0, nil}, // a relay that holds none yet
		{"graft seq 0", TypeGraft, 2, []TreeEntry{e1, e0}, 0, ErrBadTree},
		{"prune with seq", TypePrune, 1, []TreeEntry{e1}, 0, ErrBadTree},
		{"count above entries", TypeIHave, 3, []TreeEntry{e1, e1}, 0, ErrTooManyRecords},
		{"trailing bytes", TypeGraft, 1, []TreeEntry{e1}, 5, ErrBadLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p []byte
			for i := range tc.entries {
				p = AppendTreeEntry(p, &tc.entries[i])
			}
			p = append(p, make([]byte, tc.extra)...)
			_, err := ParseFrame(payloadFrame(testHeader, tc.typ, tc.count, p))
			if err != tc.want {
				t.Fatalf("ParseFrame: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMaxTreeEntries(t *testing.T) {
	for _, auth := range []bool{false, true} {
		n := MaxTreeEntries(DefaultMaxFrameSize, auth)
		var p []byte
		for range n {
			p = AppendTreeEntry(p, &TreeEntry{Origin: 1, Epoch: 1, Seq: 1})
		}
		size := HeaderLen + len(p)
		if auth {
			size += TagLen
		}
		if size > DefaultMaxFrameSize || size+TreeEntryLen <= DefaultMaxFrameSize {
			t.Fatalf("auth %v: %d entries make %d bytes of %d", auth, n, size, DefaultMaxFrameSize)
		}
	}
	if MaxTreeEntries(10, false) != 0 {
		t.Fatal("a budget below the header holds entries")
	}
	if !bytes.Equal(AppendTreeEntry(make([]byte, 0, TreeEntryLen), &TreeEntry{}), make([]byte, TreeEntryLen)) {
		t.Fatal("zero entry is not zero bytes")
	}
}
