package bridge

import (
	"bytes"
	"testing"
	"time"
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

// FuzzImport feeds arbitrary subjects and messages to a standby bridge's
// import path (every check runs; nothing is published). It must never
// panic, accept only what ValidateBatch accepts on a remote mesh's
// subject, and keep its tables within their caps.
func FuzzImport(f *testing.F) {
	f.Add("warpmesh.inv.x", buildBatch(f, "x", 1, 1<<16, []rec{{1, 1, 1, 0, "k", false}}))
	f.Add("warpmesh.inv.x", buildBatch(f, "x", 5, 1<<16, []rec{{1, 1, 1, 3, "k", true}, {2, 1, 1, 0, "j", false}}))
	f.Add("warpmesh.inv.m", buildBatch(f, "m", 1, 1<<16, []rec{{1, 1, 1, 0, "k", false}}))
	f.Add("warpmesh.inv.y", buildBatch(f, "x", 1, 1<<16, []rec{{1, 1, 1, 0, "k", false}}))
	f.Add("other.subject", []byte("WB"))
	b := &Bridge{cfg: &resolved{Options: Options{Name: "m", DedupFrames: 64, MaxStreams: 4, SubjectPrefix: "warpmesh",
		StreamTimeout: time.Second}}}
	b.imp.init(b, time.Now())
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		accepted := b.imp.handle(subject, data)
		h, _, err := ValidateBatch(data)
		mesh, ok := b.cfg.meshOfSubject(subject)
		if accepted && (err != nil || !ok || mesh == "m" || string(h.Mesh) != mesh || h.Flags&FlagPresence != 0) {
			t.Fatalf("accepted %q on %q", data, subject)
		}
		if len(b.imp.streams) > 4 || len(b.imp.meshes) > 4 || b.imp.dd.len() > 128 {
			t.Fatalf("tables past their caps: %d streams, %d meshes, %d frames", len(b.imp.streams), len(b.imp.meshes), b.imp.dd.len())
		}
	})
}
