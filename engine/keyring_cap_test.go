package engine

import (
	"net/netip"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// TestDerivedKeyCache: frames that fail to open leave nothing in the
// cache; a genuine origin epoch is cached; the cache never passes its cap.
func TestDerivedKeyCache(t *testing.T) {
	k := testKey(9)
	kr, err := NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	o := &opener{ring: kr, cache: make(map[[2]uint64]*openKeys), scratch: make([]byte, 0, codec.MaxFrameSize)}
	for i := range 2000 {
		hdr := codec.Header{Type: codec.TypeAlive, Flags: codec.FlagAuth, HopLimit: 1, Cluster: 1,
			Origin: uint64(i + 1), Epoch: 7, Packet: 1, PayloadLen: codec.AliveFixedLen}
		junk := append(codec.AppendHeader(nil, &hdr), make([]byte, codec.AliveFixedLen+codec.TagLen)...)
		h, _, err := codec.ParseHeader(junk)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := o.open(&h, junk); ok {
			t.Fatal("junk opened")
		}
	}
	if len(o.cache) != 0 {
		t.Fatalf("junk left %d derived keys in the cache", len(o.cache))
	}
	for i := range maxDerivedKeys + 10 {
		good := forge(1, k, codec.Header{Type: codec.TypeAlive, HopLimit: 1, Origin: uint64(1 << 40), Epoch: uint64(i + 1), Packet: 1},
			alivePayload(netip.MustParseAddrPort("127.0.0.1:7946")))
		h, _, err := codec.ParseHeader(good)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := o.open(&h, good); !ok {
			t.Fatal("a genuine frame did not open")
		}
	}
	if len(o.cache) > maxDerivedKeys || len(o.cache) == 0 {
		t.Fatalf("cache holds %d entries, cap %d", len(o.cache), maxDerivedKeys)
	}
}
