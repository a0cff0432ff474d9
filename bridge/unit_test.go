package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// rec is one record as the tests name it.
type rec struct {
	origin, epoch, seq uint64
	idx                uint16
	key                string
	prefix             bool
}

// buildBatch encodes recs the way the exporter does.
func buildBatch(t testing.TB, mesh string, seq uint64, max int, recs []rec) []byte {
	var e exportBuf
	e.reset(AppendBatchHeader(nil, &BatchHeader{Bridge: BridgeIDTag | 1, Stream: 5, Mesh: []byte(mesh)}))
	for _, r := range recs {
		if !e.add(r.origin, r.epoch, r.seq, r.idx, []byte(r.key), r.prefix, max) {
			t.Fatalf("record %+v does not fit", r)
		}
	}
	e.closeGroup()
	setBatchSeq(e.b, seq)
	setBatchGroups(e.b, e.groups)
	return e.b
}

// walk decodes a validated batch back into records.
func walk(t testing.TB, b []byte) (BatchHeader, []rec) {
	h, off, err := ValidateBatch(b)
	if err != nil {
		t.Fatalf("ValidateBatch: %v", err)
	}
	var out []rec
	body := b[off:]
	for range h.Groups {
		g, n, err := ParseGroup(body)
		if err != nil {
			t.Fatal(err)
		}
		body = body[n:]
		for i := range g.Count {
			k, p, n, err := ParseRecord(body)
			if err != nil {
				t.Fatal(err)
			}
			body = body[n:]
			out = append(out, rec{g.Origin, g.Epoch, g.Seq, g.First + i, string(k), p})
		}
	}
	return h, out
}

func TestBatchRoundTrip(t *testing.T) {
	recs := []rec{
		{1, 1, 7, 0, "a", false}, {1, 1, 7, 1, "bb", true}, {1, 1, 7, 2, "ccc", false}, // one group
		{1, 1, 8, 0, "d", false},           // next frame: new group
		{2, 9, 8, 3, "split-frame", false}, // a frame continued from an earlier batch
		{2, 9, 8, 5, "hole", false},        // index jump: new group
		{3, 1, 1, 0, string(bytes.Repeat([]byte{'k'}, MaxKeyLen)), true},
	}
	b := buildBatch(t, "eu-west_1", 42, 1<<16, recs)
	h, got := walk(t, b)
	if h.Seq != 42 || string(h.Mesh) != "eu-west_1" || h.Bridge != BridgeIDTag|1 || h.Stream != 5 || h.Groups != 5 {
		t.Fatalf("header %+v", h)
	}
	if fmt.Sprint(got) != fmt.Sprint(recs) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, recs)
	}
}

func TestValidateBatchRejects(t *testing.T) {
	good := buildBatch(t, "m", 1, 1<<16, []rec{{1, 1, 1, 0, "key", false}})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short header", good[:10], ErrShort},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadMagic},
		{"bad version", mut(func(b []byte) []byte { b[offVersion] = 2; return b }), ErrBadVersion},
		{"unknown flag", mut(func(b []byte) []byte { b[offFlags] = 0x80; return b }), ErrMalformed},
		{"mesh name past end", mut(func(b []byte) []byte { return b[:offMesh] }), ErrShort},
		{"bad mesh byte", mut(func(b []byte) []byte { b[offMesh] = '.'; return b }), ErrMalformed},
		{"zero seq", mut(func(b []byte) []byte { setBatchSeq(b, 0); return b }), ErrMalformed},
		{"truncated group", mut(func(b []byte) []byte { return b[:BatchHeaderLen(1)+10] }), ErrMalformed},
		{"truncated key", mut(func(b []byte) []byte { return b[:len(b)-1] }), ErrMalformed},
		{"trailing byte", mut(func(b []byte) []byte { return append(b, 0) }), ErrMalformed},
		{"more groups than present", mut(func(b []byte) []byte { setBatchGroups(b, 2); return b }), ErrMalformed},
		{"zero count", mut(func(b []byte) []byte { setGroupCount(b, BatchHeaderLen(1), 0); return b }), ErrMalformed},
		{"zero-length key", mut(func(b []byte) []byte {
			o := BatchHeaderLen(1) + GroupHeaderLen
			b[o], b[o+1] = 0, 0
			return b[:o+2]
		}), ErrMalformed},
		{"presence with groups", mut(func(b []byte) []byte { b[offFlags] = byte(FlagPresence); return b }), ErrMalformed},
	}
	for _, c := range cases {
		if _, _, err := ValidateBatch(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestExportBufSplitsAtMax(t *testing.T) {
	var e exportBuf
	hdr := AppendBatchHeader(nil, &BatchHeader{Bridge: 1, Stream: 1, Mesh: []byte("m")})
	e.reset(hdr)
	max := len(hdr) + GroupHeaderLen + 3*(RecordHeaderLen+4)
	for i := range 3 {
		if !e.add(1, 1, 1, uint16(i), []byte("abcd"), false, max) {
			t.Fatalf("record %d did not fit", i)
		}
	}
	if e.add(1, 1, 1, 3, []byte("abcd"), false, max) {
		t.Fatal("a record past max was added")
	}
	if len(e.b) != max || e.keys != 3 || e.groups != 1 {
		t.Fatalf("len %d keys %d groups %d", len(e.b), e.keys, e.groups)
	}
}

func TestDedupBoundedAndMonotonic(t *testing.T) {
	d := newDedup(64)
	id := func(i int) frameID { return frameID{mesh: 1, origin: 2, epoch: 3, seq: uint64(i)} }
	d.advance(id(0), 5)
	d.advance(id(0), 3) // never lowers
	if n := d.next(id(0)); n != 5 {
		t.Fatalf("next %d, want 5", n)
	}
	for i := 1; i < 1000; i++ {
		d.advance(id(i), 1)
		if d.len() > 128 {
			t.Fatalf("table holds %d frames, cap is 2×64", d.len())
		}
	}
	if d.next(id(999)) != 1 || d.next(id(0)) != 0 {
		t.Fatal("recent frame forgotten or ancient frame remembered")
	}
	if a := testing.AllocsPerRun(1000, func() { d.advance(id(2000+int(d.len())), 1) }); a != 0 {
		t.Fatalf("advance allocates %.1f per call in steady state", a)
	}
}

func TestBridgeIDTag(t *testing.T) {
	for range 100 {
		if id := NewBridgeID(); !IsBridgeID(id) || id == BridgeIDTag {
			t.Fatalf("NewBridgeID %016x", id)
		}
	}
	if IsBridgeID(0x1234567812345678) || IsBridgeID(0) {
		t.Fatal("an untagged id taken for a bridge")
	}
}

func TestOptionsRejectNaming(t *testing.T) {
	cases := []struct {
		opt string
		mod func(*Options)
	}{
		{"Name", func(o *Options) { o.Name = "a.b" }},
		{"Mesh.NodeID", func(o *Options) { o.Mesh.NodeID = 5 }},
		{"Mesh.OnInvalidate", func(o *Options) { o.Mesh.OnInvalidate = func(engine.Invalidation) {} }},
		{"Mesh.EchoLocal", func(o *Options) { o.Mesh.EchoLocal = true }},
		{"Remotes", func(o *Options) { o.Remotes = []string{"m"} }},
		{"Remotes", func(o *Options) { o.Remotes = []string{"x", "x"} }},
		{"MaxBatchBytes", func(o *Options) { o.MaxBatchBytes = 100 }},
		{"StreamTimeout", func(o *Options) { o.KeepAlive, o.StreamTimeout = 1e9, 1e9 }},
		{"SubjectPrefix", func(o *Options) { o.SubjectPrefix = "a..b" }},
		{"DedupFrames", func(o *Options) { o.DedupFrames = 3 }},
		{"JetStream.Durable", func(o *Options) { o.JetStream = &JetStreamOptions{Durable: "a.b"} }},
		{"Remotes", func(o *Options) { o.JetStream = &JetStreamOptions{} }},
	}
	for _, c := range cases {
		o := Options{Name: "m"}
		c.mod(&o)
		_, err := New(o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != c.opt || !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: err %v", c.opt, err)
		}
	}
}

// The export handler and the import path allocate nothing per
// invalidation in steady state.
func TestHotPathsDoNotAllocate(t *testing.T) {
	b := &Bridge{cfg: &resolved{Options: Options{Name: "m", MaxBatchBytes: 1 << 16, ExportQueue: 4,
		DedupFrames: 1 << 10, MaxStreams: 16, SubjectPrefix: "warpmesh"}}}
	b.exp.b = b
	b.exp.init(b, BridgeIDTag|1, 1, nil)
	var seq uint64
	inv := engine.Invalidation{Key: []byte("user:123456"), Origin: 99, Epoch: 1}
	if a := testing.AllocsPerRun(10000, func() {
		seq++
		inv.Seq = seq / 4
		b.exp.onInvalidate(inv)
		if len(b.exp.full) > 0 { // stand in for the publisher
			b.exp.free = append(b.exp.free, b.exp.full[0])
			b.exp.full = b.exp.full[:0]
		}
	}); a != 0 {
		t.Fatalf("onInvalidate: %.2f allocations per invalidation", a)
	}
	// Import, as a standby (no node to publish into).
	b.imp.init(b, time.Now())
	batch := buildBatch(t, "x", 1, 1<<16, []rec{{1, 1, 1, 0, "a", false}, {1, 1, 1, 1, "b", false}})
	n := uint64(1)
	if a := testing.AllocsPerRun(1000, func() {
		n++
		setBatchSeq(batch, n)
		if !b.imp.handle("warpmesh.inv.x", batch) {
			t.Fatal("batch refused")
		}
	}); a != 0 {
		t.Fatalf("import: %.2f allocations per batch", a)
	}
}

// A valid batch that finds the stream table full is dropped and counted;
// the mesh is flushed (here the bridge is a standby, so only the drop
// shows), and a dead stream makes room.
func TestStreamTableCap(t *testing.T) {
	b := &Bridge{cfg: &resolved{Options: Options{Name: "m", DedupFrames: 64, MaxStreams: 2, SubjectPrefix: "warpmesh",
		StreamTimeout: time.Second}}}
	b.imp.init(b, time.Now().Add(-time.Hour))
	batch := func(bridge uint64) []byte {
		bb := buildBatch(t, "x", 1, 1<<16, []rec{{1, 1, 1, 0, "a", false}})
		binary.BigEndian.PutUint64(bb[offBridge:], bridge)
		return bb
	}
	for i := uint64(1); i <= 2; i++ {
		if !b.imp.handle("warpmesh.inv.x", batch(i)) {
			t.Fatalf("stream %d refused", i)
		}
	}
	if b.imp.handle("warpmesh.inv.x", batch(3)) || b.ctr.drops[DropTooManyStreams].Load() != 1 {
		t.Fatal("a third stream was not refused with the table full")
	}
	b.imp.expire(time.Now().Add(2 * time.Second)) // both streams fall silent
	if !b.imp.handle("warpmesh.inv.x", batch(3)) {
		t.Fatal("a dead stream did not make room")
	}
}
