package codec

import "testing"

func TestPaddedFrame(t *testing.T) {
	var fb FrameBuilder
	h := Header{Type: TypeData, Flags: FlagPadded, HopLimit: 1, Origin: 1, Epoch: 1, Seq: 1, Packet: 1}
	fb.Reset(make([]byte, 0, DefaultMaxFrameSize), h, DefaultMaxFrameSize)
	fb.Add([]byte("k"), RecordExact)
	f := fb.Finish()
	padded := append(f, make([]byte, 100)...)
	fr, err := ParseFrame(padded)
	if err != nil {
		t.Fatalf("padded frame: %v", err)
	}
	if len(fr.Payload) != RecordLen(1) {
		t.Fatalf("payload %d bytes", len(fr.Payload))
	}
	if _, err := ParseFrame(f); err != nil {
		t.Fatalf("padded flag without padding: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { ParseHeader(padded) }); n != 0 {
		t.Fatalf("allocs %v", n)
	}
}
