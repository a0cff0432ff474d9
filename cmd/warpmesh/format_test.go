package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warpmesh/warpmesh/engine"
)

func TestPrinterLines(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&out)
	p.invalidation(engine.Invalidation{Key: []byte("user:1"), Origin: 0xab})
	p.invalidation(engine.Invalidation{Key: []byte("a b\n\x00\xff"), Prefix: true, Origin: 1})
	addr := netip.MustParseAddrPort("127.0.0.1:7946")
	p.event(engine.Event{Type: engine.EventJoin, Member: engine.Member{ID: 0x1234, Addr: addr, Epoch: 7, Incarnation: 2}})
	p.event(engine.Event{Type: engine.EventGap, Gap: engine.Gap{Origin: 0xff, Epoch: 9, Missing: 3, Reason: engine.GapEvicted}})
	p.http(addr)
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	want := `inv 00000000000000ab exact "user:1"
inv 0000000000000001 prefix "a b\n\x00\xff"
event join 0000000000001234 127.0.0.1:7946 epoch=7 incarnation=2
event gap 00000000000000ff epoch=9 missing=3 reason=evicted
http 127.0.0.1:7946
`
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
	line := strings.SplitN(out.String(), "\n", 3)[1]
	key, err := strconv.Unquote(strings.SplitN(line, " ", 4)[3])
	if err != nil || key != "a b\n\x00\xff" {
		t.Errorf("key does not round-trip: %q %v", key, err)
	}
	p.invalidation(engine.Invalidation{Key: []byte("late")}) // after close: dropped, no panic
	if strings.Contains(out.String(), "late") {
		t.Error("line written after close")
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
