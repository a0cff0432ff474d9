package fuzz

import (
	"bytes"
	"testing"

	"github.com/warpmesh/warpmesh/codec"
)

// seedChallenge is the payload of the CHALLENGE and RESPONSE seeds.
var seedChallenge = codec.Challenge{Time: 1 << 40, Addr: seedAddr4, Cookie: [codec.CookieLen]byte{1, 2, 3, 15: 0xff}}

// FuzzParseChallenge: ParseChallenge never panics, rejects only with a
// sentinel, never accepts "no address", and what it accepts re-encodes to
// the same bytes; a CHALLENGE or RESPONSE frame around the payload parses
// exactly when the payload does.
func FuzzParseChallenge(f *testing.F) {
	f.Add(codec.AppendChallenge(nil, &seedChallenge))
	f.Add(codec.AppendChallenge(nil, &codec.Challenge{Addr: seedAddr6}))
	f.Add(make([]byte, codec.ChallengeLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, n, err := codec.ParseChallenge(b)
		if err != nil {
			checkSentinel(t, err)
		} else {
			if n != codec.ChallengeLen || !c.Addr.IsValid() {
				t.Fatalf("accepted n=%d addr %v", n, c.Addr)
			}
			if got := codec.AppendChallenge(nil, &c); !bytes.Equal(got, b[:n]) {
				t.Fatalf("re-encoding differs\n in  %x\n out %x", b[:n], got)
			}
		}
		if len(b) > codec.MaxFrameSize-codec.HeaderLen {
			return
		}
		for _, typ := range []codec.FrameType{codec.TypeChallenge, codec.TypeResponse} {
			_, ferr := codec.ParseFrame(seedFrame(seedHeader, typ, 0, b))
			if (ferr == nil) != (err == nil && len(b) == codec.ChallengeLen) {
				t.Fatalf("%v frame: ParseFrame %v, ParseChallenge %v, %d bytes", typ, ferr, err, len(b))
			}
		}
	})
}
