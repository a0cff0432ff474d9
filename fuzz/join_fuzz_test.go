package fuzz

import (
	"bytes"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// FuzzParseJoin: ParseJoin never panics, rejects only with a sentinel,
// accepts only an ask or a marks request without a sequence or an answer
// with one, and what
// it accepts re-encodes to the same bytes; a JOIN frame around the payload
// parses exactly when the payload does.
func FuzzParseJoin(f *testing.F) {
	f.Add(codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinAsk, Member: 0xC1}))
	f.Add(codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinAnswer, Member: 0xC1, From: 40}))
	f.Add(codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinMarks, Member: 0xC1}))
	f.Add(make([]byte, codec.JoinLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, n, err := codec.ParseJoin(b)
		if err != nil {
			checkSentinel(t, err)
		} else {
			if n != codec.JoinLen || (j.Kind == codec.JoinAnswer) == (j.From == 0) ||
				(j.Kind != codec.JoinAsk && j.Kind != codec.JoinAnswer && j.Kind != codec.JoinMarks) {
				t.Fatalf("accepted n=%d %+v", n, j)
			}
			if got := codec.AppendJoin(nil, &j); !bytes.Equal(got, b[:n]) {
				t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
			}
		}
		if len(b) > codec.MaxFrameSize-codec.HeaderLen {
			return
		}
		_, ferr := codec.ParseFrame(seedFrame(seedHeader, codec.TypeJoin, 0, b))
		if (ferr == nil) != (err == nil && len(b) == codec.JoinLen) {
			t.Fatalf("JOIN frame: ParseFrame %v, ParseJoin %v, %d bytes", ferr, err, len(b))
		}
	})
}
