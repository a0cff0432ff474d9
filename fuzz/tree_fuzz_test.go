package fuzz

import (
	"bytes"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// fuzzTreePayload is the property shared by the IHAVE, GRAFT and PRUNE
// payload fuzzers: ParseTreeEntry never panics, rejects only with a
// sentinel and re-encodes what it accepts to the same bytes; a frame of
// typ around the payload parses exactly when it holds one or more whole
// entries, each with a sequence (GRAFT), none (PRUNE) or either (IHAVE:
// 0 is a relay's "none yet").
func fuzzTreePayload(t *testing.T, typ codec.FrameType, b []byte) {
	e, n, err := codec.ParseTreeEntry(b)
	if err != nil {
		checkSentinel(t, err)
		if len(b) >= codec.TreeEntryLen {
			t.Fatalf("rejected %d bytes: %v", len(b), err)
		}
	} else {
		if n != codec.TreeEntryLen {
			t.Fatalf("accepted n=%d", n)
		}
		if got := codec.AppendTreeEntry(nil, &e); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
		}
	}
	count := len(b) / codec.TreeEntryLen
	want := count > 0 && len(b)%codec.TreeEntryLen == 0
	for rest := b; want && len(rest) >= codec.TreeEntryLen; rest = rest[codec.TreeEntryLen:] {
		e, _, _ := codec.ParseTreeEntry(rest)
		want = typ == codec.TypeIHave || (typ == codec.TypePrune) == (e.Seq == 0)
	}
	if len(b) > codec.MaxFrameSize-codec.HeaderLen {
		return
	}
	_, ferr := codec.ParseFrame(seedFrame(seedHeader, typ, uint16(count), b))
	if ferr != nil {
		checkSentinel(t, ferr)
	}
	if (ferr == nil) != want {
		t.Fatalf("%v frame of %d bytes: ParseFrame %v, want accepted %v", typ, len(b), ferr, want)
	}
}

func addTreeSeeds(f *testing.F, typ codec.FrameType) {
	k, _ := kindOf(typ)
	for _, s := range k.seeds() {
		f.Add(s.payload)
	}
	f.Add(make([]byte, codec.TreeEntryLen))
	f.Add(make([]byte, codec.TreeEntryLen-1))
}

// FuzzParseIHave: IHAVE payloads (see fuzzTreePayload).
func FuzzParseIHave(f *testing.F) {
	addTreeSeeds(f, codec.TypeIHave)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzTreePayload(t, codec.TypeIHave, b) })
}

// FuzzParseGraft: GRAFT payloads (see fuzzTreePayload).
func FuzzParseGraft(f *testing.F) {
	addTreeSeeds(f, codec.TypeGraft)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzTreePayload(t, codec.TypeGraft, b) })
}

// FuzzParsePrune: PRUNE payloads (see fuzzTreePayload).
func FuzzParsePrune(f *testing.F) {
	addTreeSeeds(f, codec.TypePrune)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzTreePayload(t, codec.TypePrune, b) })
}
