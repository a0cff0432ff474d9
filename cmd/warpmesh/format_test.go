package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/engine/memnet"
)

func TestPrinterLines(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&out)
	p.invalidation(engine.Invalidation{Key: []byte("user:1"), Origin: 0xab, Epoch: 5, Seq: 12})
	p.invalidation(engine.Invalidation{Key: []byte("a b\n\x00\xff"), Prefix: true, Origin: 1, Seq: 1<<64 - 1})
	addr := netip.MustParseAddrPort("127.0.0.1:7946")
	p.event(engine.Event{Type: engine.EventJoin, Member: engine.Member{ID: 0x1234, Addr: addr, Epoch: 7, Incarnation: 2}})
	p.event(engine.Event{Type: engine.EventGap, Gap: engine.Gap{Origin: 0xff, Epoch: 9, Missing: 3, First: 40, Last: 43, Reason: engine.GapEvicted}})
	p.http(addr)
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	want := `inv 00000000000000ab epoch=5 seq=12 exact "user:1"
inv 0000000000000001 epoch=0 seq=18446744073709551615 prefix "a b\n\x00\xff"
event join 0000000000001234 127.0.0.1:7946 epoch=7 incarnation=2
event gap 00000000000000ff epoch=9 missing=3 reason=evicted first=40 last=43
http 127.0.0.1:7946
`
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	line := strings.SplitN(out.String(), "\n", 3)[1]
	inv, ok := parseInvLine(line)
	if !ok || inv.origin != "0000000000000001" || inv.fields["seq"] != "18446744073709551615" || inv.kind != "prefix" || inv.key != "a b\n\x00\xff" {
		t.Errorf("inv line does not parse back: %+v %v", inv, ok)
	}
	p.invalidation(engine.Invalidation{Key: []byte("late")}) // after close: dropped, no panic
	if strings.Contains(out.String(), "late") {
		t.Error("line written after close")
	}
}

// Lines that arrive before the node exists wait for the self line, which
// goes first; without one (the node failed to start) they are dropped.
func TestPrinterHoldsUntilSelf(t *testing.T) {
	net := memnet.New(1)
	defer net.Close()
	ep, err := net.Listen(netip.MustParseAddrPort("10.0.0.1:7946"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := engine.New(engine.Options{Transport: ep, Cluster: "printer", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	var out bytes.Buffer
	p := newHeldPrinter(&out)
	p.invalidation(engine.Invalidation{Key: []byte("early"), Origin: 2, Seq: 1})
	p.self(node)
	p.invalidation(engine.Invalidation{Key: []byte("late"), Origin: 2, Seq: 2})
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	wantSelf := fmt.Sprintf("self %016x %s epoch=%d cluster=%q", node.ID(), node.Addr(), node.Epoch(), "printer")
	want := []string{wantSelf, `inv 0000000000000002 epoch=0 seq=1 exact "early"`, `inv 0000000000000002 epoch=0 seq=2 exact "late"`}
	if !slices.Equal(lines, want) {
		t.Errorf("got %q\nwant %q", lines, want)
	}

	var dropped bytes.Buffer
	p = newHeldPrinter(&dropped)
	p.invalidation(engine.Invalidation{Key: []byte("orphan"), Origin: 2, Seq: 1})
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	if dropped.String() != "" {
		t.Errorf("held lines written without a self line: %q", dropped.String())
	}
}

func TestParseInvLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		key  string
	}{
		{`inv 00000000000000ab seq=3 exact "k"`, true, "k"},
		{`inv 00000000000000ab seq=3 epoch=9 prefix "a b"`, true, "a b"}, // a future field
		{`inv 00000000000000ab exact "k"`, true, "k"},                    // fields are optional
		{`inv 00000000000000ab seq=3 exact k`, false, ""},
		{`inv 00000000000000ab seq=3 sideways "k"`, false, ""},
		{`inv 00000000000000ab seq=3`, false, ""},
	} {
		inv, ok := parseInvLine(tc.line)
		if ok != tc.ok || inv.key != tc.key {
			t.Errorf("%s: %+v %v, want key %q ok %v", tc.line, inv, ok, tc.key, tc.ok)
		}
	}
}

func TestReadKeyFile(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, keySize)
	other := bytes.Repeat([]byte{0x01}, keySize)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "# primary first\n"+strings.Repeat("5a", keySize)+"\n\n  "+base64.StdEncoding.EncodeToString(other)+"  \n"+
		base64.RawURLEncoding.EncodeToString(key)+"\n")
	keys, err := readKeyFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || !bytes.Equal(keys[0], key) || !bytes.Equal(keys[1], other) || !bytes.Equal(keys[2], key) {
		t.Fatalf("keys %x", keys)
	}
	for name, body := range map[string]string{
		"short":  strings.Repeat("ab", 16) + "\n",
		"junk":   "hello world\n",
		"b64-16": base64.StdEncoding.EncodeToString(key[:16]) + "\n",
	} {
		if _, err := readKeyFile(write(name, body)); err == nil || !strings.Contains(err.Error(), ":1:") {
			t.Errorf("%s: error %v does not name line 1", name, err)
		}
	}
	if _, err := readKeyFile(write("empty", "# nothing\n\n")); !errors.Is(err, errNoKeys) {
		t.Errorf("empty file: %v", err)
	}
	if _, err := readKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
