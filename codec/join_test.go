package codec

import (
	"errors"
	"testing"
)

func TestJoinRoundTrip(t *testing.T) {
	for _, want := range []Join{
		{Kind: JoinAsk, Member: 0xC1},
		{Kind: JoinMarks, Member: 0xC1},
		{Kind: JoinAnswer, Member: 0xC1, From: 1},
		{Kind: JoinAnswer, Member: ^uint64(0), From: ^uint64(0)},
	} {
		b := AppendJoin(nil, &want)
		got, n, err := ParseJoin(b)
		if err != nil || n != JoinLen || got != want {
			t.Fatalf("%+v: got %+v, %d, %v", want, got, n, err)
		}
		h := testHeader
		h.Type, h.PayloadLen = TypeJoin, JoinLen
		if err := ValidatePayload(&h, b); err != nil {
			t.Fatalf("%+v: validate: %v", want, err)
		}
		h.PayloadLen++
		if err := ValidatePayload(&h, append(b, 0)); !errors.Is(err, ErrBadLength) {
			t.Fatalf("trailing byte: %v", err)
		}
		h.Count, h.PayloadLen = 1, JoinLen
		if err := ValidatePayload(&h, b); !errors.Is(err, ErrTooManyRecords) {
			t.Fatalf("count 1: %v", err)
		}
	}
	good := AppendJoin(nil, &Join{Kind: JoinAnswer, Member: 7, From: 3})
	if _, _, err := ParseJoin(good[:JoinLen-1]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	bad := map[string][]byte{
		"kind 0":         AppendJoin(nil, &Join{Kind: 0, Member: 7}),
		"kind 4":         AppendJoin(nil, &Join{Kind: 4, Member: 7}),
		"marks with seq": AppendJoin(nil, &Join{Kind: JoinMarks, Member: 7, From: 1}),
		"answer from 0":  AppendJoin(nil, &Join{Kind: JoinAnswer, Member: 7}),
		"ask with seq":   AppendJoin(nil, &Join{Kind: JoinAsk, Member: 7, From: 9}),
		"reserved":       mutate(good, func(b []byte) []byte { b[5] = 1; return b }),
	}
	for name, b := range bad {
		if _, _, err := ParseJoin(b); !errors.Is(err, ErrBadJoin) {
			t.Errorf("%s: got %v, want ErrBadJoin", name, err)
		}
	}
	buf := make([]byte, 0, JoinLen)
	j := Join{Kind: JoinAnswer, Member: 7, From: 3}
	if a := testing.AllocsPerRun(100, func() { ParseJoin(AppendJoin(buf[:0], &j)) }); a != 0 {
		t.Fatalf("allocs %v", a)
	}
}
