package codec

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.hex golden vectors from the encoder")

// TestGolden pins the wire format: the encoder must produce exactly the
// committed bytes and the decoder must accept them. Regenerate with
// `go test ./codec -run TestGolden -update` only for an intended format
// change, which also needs a Version bump.
func TestGolden(t *testing.T) {
	frames := goldenFrames()
	names := make([]string, 0, len(frames))
	for name := range frames {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		frame := frames[name]
		path := filepath.Join("testdata", name+".hex")
		t.Run(name, func(t *testing.T) {
			if *update {
				if err := os.WriteFile(path, []byte(formatHex(frame)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			want, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
			if err != nil {
				t.Fatalf("%s: bad hex: %v", path, err)
			}
			if !bytes.Equal(frame, want) {
				t.Fatalf("WIRE FORMAT CHANGED: encoder output for %q differs from %s\n got:\n%s want:\n%s"+
					"an intended change needs a Version bump and `go test ./codec -run TestGolden -update`",
					name, path, formatHex(frame), formatHex(want))
			}
			if _, err := ParseFrame(want); err != nil {
				t.Fatalf("golden %s no longer parses: %v", path, err)
			}
		})
	}
}

// formatHex renders b as lowercase hex, 16 bytes per line.
func formatHex(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(16, len(b))
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

// TestGoldenFields decodes the golden vectors field by field, so a change
// that moved bytes consistently in encoder and decoder still fails.
func TestGoldenFields(t *testing.T) {
	data := goldenFrames()["data"]
	want := "574d" + "01" + "01" + "00" + "38" + "00" + "04" + // magic, version, type, flags, hdrlen, hops, hop limit
		hex.EncodeToString(be64(ClusterHash("golden"))) +
		"0102030405060708" + "1112131415161718" + // origin, epoch
		"000000000000002a" + "000000000000004d" + // seq 42, packet 77
		"0002" + "0027" + "00000000" // count 2, payload 39, reserved
	if got := hex.EncodeToString(data[:HeaderLen]); got != want {
		t.Fatalf("DATA header\n got %s\nwant %s", got, want)
	}
	rec := "0007" + "01" + "00" + hex.EncodeToString(be64(xxhashOf("user:42"))) + hex.EncodeToString([]byte("user:42"))
	if got := hex.EncodeToString(data[HeaderLen : HeaderLen+RecordLen(7)]); got != rec {
		t.Fatalf("first record\n got %s\nwant %s", got, rec)
	}
	alive := goldenFrames()["alive"]
	p := alive[HeaderLen:]
	wantAlive := "0000000000000005" + "0000000000000029" + // incarnation 5, hwm 41
		"00000000000000000000ffffc0000201" + "1f0a" + "0000" // ::ffff:192.0.2.1, port 7946, reserved
	if got := hex.EncodeToString(p[:AliveFixedLen]); got != wantAlive {
		t.Fatalf("ALIVE fixed part\n got %s\nwant %s", got, wantAlive)
	}
	wantEntry := "00000000000000a2" + "00000000000000b2" + "0000000000000009" +
		"20010db8000000000000000000000001" + "1f0b" + "02" + "00" // IPv6, port 7947, suspect
	if got := hex.EncodeToString(p[AliveFixedLen+DigestEntryLen:]); got != wantEntry {
		t.Fatalf("IPv6 digest entry\n got %s\nwant %s", got, wantEntry)
	}
}

// TestGoldenChallengeFields decodes the CHALLENGE vector field by field.
func TestGoldenChallengeFields(t *testing.T) {
	for _, name := range []string{"challenge", "response"} {
		f := goldenFrames()[name]
		if f[offType] != map[string]byte{"challenge": 8, "response": 9}[name] {
			t.Fatalf("%s: type byte %d", name, f[offType])
		}
		want := "0000019a2b3c4d5e" + // time
			"00000000000000000000ffffc0000201" + "1f0a" + // ::ffff:192.0.2.1, port 7946
			"0000" + // reserved
			"c00c1e010000000000000000000000ff" // cookie
		if got := hex.EncodeToString(f[HeaderLen:]); got != want {
			t.Fatalf("%s payload\n got %s\nwant %s", name, got, want)
		}
	}
}
