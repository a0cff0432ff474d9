package codec

import (
	"errors"
	"testing"
)

func TestAckRoundTrip(t *testing.T) {
	want := Ack{Origin: 1, Epoch: 2, Cum: 3}
	b := AppendAck(nil, &want)
	got, n, err := ParseAck(b)
	if err != nil || n != AckLen || got != want {
		t.Fatalf("got %+v, %d, %v", got, n, err)
	}
	if _, _, err := ParseAck(b[:AckLen-1]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	h := testHeader
	h.Type = TypeAck
	if err := ValidatePayload(&h, append(b, 0)); !errors.Is(err, ErrBadLength) {
		t.Fatalf("trailing byte: %v", err)
	}
	buf := make([]byte, 0, AckLen)
	if a := testing.AllocsPerRun(100, func() { ParseAck(AppendAck(buf[:0], &want)) }); a != 0 {
		t.Fatalf("allocs %v", a)
	}
}
