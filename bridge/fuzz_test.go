package bridge

import (
	"bytes"
	"testing"
)

// FuzzValidateBatch feeds arbitrary bytes to the batch decoder. It must
// never panic, and whatever it accepts must walk without error and encode
// back to exactly the same bytes (nothing accepted is ignored or
// ambiguous).
func FuzzValidateBatch(f *testing.F) {
	f.Add(buildBatch(f, "A", 1, 1<<16, []rec{{1, 1, 1, 0, "k", false}}))
	f.Add(buildBatch(f, "mesh-1", 9, 1<<16, []rec{
		{1, 1, 7, 0, "user:1", false}, {1, 1, 7, 1, "user:", true}, {2, 3, 4, 5, "x", false},
	}))
	f.Add(AppendBatchHeader(nil, &BatchHeader{Flags: FlagPresence, Bridge: 1, Stream: 2, Seq: 3, Mesh: []byte("p")}))
	f.Add(AppendBatchHeader(nil, &BatchHeader{Flags: FlagLoss | FlagBye, Bridge: 1, Stream: 2, Seq: 3, Mesh: []byte("q")}))
	f.Add([]byte{})
	f.Add([]byte("WB\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, off, err := ValidateBatch(b)
		if err != nil {
			return
		}
		out := AppendBatchHeader(nil, &h)
		if !bytes.Equal(out, b[:off]) {
			t.Fatalf("header re-encodes to %x, was %x", out, b[:off])
		}
		body := b[off:]
		for range h.Groups {
			g, n, err := ParseGroup(body)
			if err != nil {
				t.Fatalf("accepted batch: group: %v", err)
			}
			body = body[n:]
			out = appendGroupHeader(out, &g)
			for range g.Count {
				k, p, n, err := ParseRecord(body)
				if err != nil {
					t.Fatalf("accepted batch: record: %v", err)
				}
				if len(k) == 0 || len(k) > MaxKeyLen {
					t.Fatalf("accepted a %d-byte key", len(k))
				}
				body = body[n:]
				out = appendRecord(out, k, p)
			}
		}
		if len(body) != 0 || !bytes.Equal(out, b) {
			t.Fatalf("accepted batch does not re-encode to itself")
		}
	})
}
