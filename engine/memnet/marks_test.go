package memnet_test

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// TestJoinerOwesLateOriginOnlyPastMark: in a keyed mesh, a node that
// becomes ready before it can reach an origin (cut off from it, so the
// origin is not in its view) and hears of it afterwards is owed only what
// follows the mark a member gave it while it joined — not the origin's
// whole epoch, which the origin's ring no longer holds. Before stream
// marks (engine/marks.go) the joiner expected the epoch from seq 1 and
// raised a Gap for the frames the ring had dropped; a plaintext mesh
// still does (marks need a keyring): the Gap flags them, nothing is
// missed silently.
func TestJoinerOwesLateOriginOnlyPastMark(t *testing.T) {
	t.Run("keyed", func(t *testing.T) { lateOriginRun(t, true) })
	t.Run("plaintext", func(t *testing.T) { lateOriginRun(t, false) })
}

func lateOriginRun(t *testing.T, keyed bool) {
	net := newNet(t, 7)
	var kr *engine.Keyring
	if keyed {
		var err error
		if kr, err = engine.NewKeyring(make([]byte, engine.KeySize)); err != nil {
			t.Fatal(err)
		}
	}
	opts := func(int) engine.Options {
		o := churnOptions()
		o.RetransmitBuffer = 16 << 10 // about a dozen frames: the origin's history is gone
		o.Keyring = kr
		return o
	}
	nodes := startMesh(t, net, 2, []int{0}, opts)
	seed, origin := nodes[0], nodes[1]
	waitMesh(t, 5*time.Second, nodes)
	var atSeed atomic.Int64
	seed.OnInvalidate(func(engine.Invalidation) { atSeed.Add(1) })
	const keys = 20_000
	publishIndexed(t, origin, 0, keys)
	waitFor(t, 10*time.Second, "the seed to apply every key", func() bool { return atSeed.Load() == keys })
	if s := seed.Stats(); s.DataFrames < 100 {
		t.Fatalf("the seed got %d DATA frames; the test needs far more than the origin's ring holds", s.DataFrames)
	}

	// The joiner cannot reach the origin until it is ready.
	joinerAddr := simAddr(2)
	net.Partition([]netip.AddrPort{joinerAddr}, []netip.AddrPort{simAddr(1)})
	ep, err := net.Listen(joinerAddr)
	if err != nil {
		t.Fatal(err)
	}
	o := opts(2)
	o.Transport, o.AdvertiseAddr, o.Logger = ep, joinerAddr.String(), quietLogger
	o.Keyring = kr
	o.Peers = []string{simAddr(0).String()}
	var gaps atomic.Int64
	o.OnEvent = func(e engine.Event) {
		if e.Type == engine.EventGap {
			gaps.Add(1)
		}
	}
	joiner, err := engine.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { joiner.Abort() })
	waitFor(t, 5*time.Second, "the joiner to be ready", joiner.Ready)
	// Plaintext, the joiner cannot validate the origin through the cut;
	// keyed, it may have vouched for it on the seed's word (then its JOIN
	// ask went unanswered for SuspectAfter), but nothing of the origin's
	// reached it either way.
	if s := joiner.Stats(); !keyed && s.MembersAlive != 1 {
		t.Fatalf("at readiness the joiner knows %d members alive, want only the seed", s.MembersAlive)
	}
	if s := joiner.Stats(); s.DataFrames != 0 {
		t.Fatalf("before the heal the joiner applied %d DATA frames: the cut did not hold", s.DataFrames)
	}
	switch asked, answered := joiner.Stats().JoinMarksAsked, seed.Stats().JoinMarksAnswered; {
	case keyed && (asked == 0 || answered == 0):
		t.Fatalf("keyed: the joiner asked for marks %d times, the seed answered %d", asked, answered)
	case !keyed && (asked != 0 || answered != 0):
		t.Fatalf("plaintext: the joiner asked for marks %d times, the seed answered %d (marks need a keyring)", asked, answered)
	}

	// Healed, the joiner meets the origin and its high-water mark, then
	// gets a new key.
	net.Heal()
	var atJoiner atomic.Int64
	joiner.OnInvalidate(func(inv engine.Invalidation) {
		if inv.Origin == origin.ID() {
			atJoiner.Add(1)
		}
	})
	waitFor(t, 10*time.Second, "the joiner to see the origin alive", func() bool { return joiner.Stats().MembersAlive == 2 })
	publishIndexed(t, origin, keys, keys+1)
	waitFor(t, 10*time.Second, "the joiner to apply the new key", func() bool { return atJoiner.Load() >= 1 })
	s := joiner.Stats()
	if !keyed {
		// Owed the epoch from seq 1: what the ring dropped is flagged.
		waitFor(t, 10*time.Second, "a Gap for the frames the origin's ring dropped", func() bool { return gaps.Load() > 0 })
		if s := joiner.Stats(); s.MarksUsed != 0 || s.FramesLost == 0 {
			t.Fatalf("plaintext: streams from a mark %d, frames lost %d; want 0 and the dropped history", s.MarksUsed, s.FramesLost)
		}
		return
	}
	if g := gaps.Load(); g != 0 || s.FramesLost != 0 {
		t.Fatalf("joiner raised %d Gap events (%d frames lost) for an origin whose frames all predate it", g, s.FramesLost)
	}
	if s.MarksUsed == 0 {
		t.Fatalf("the origin's stream did not start from the seed's mark")
	}
	// Only the new key's frame may be noticed missing (its high-water
	// mark, on a control frame, can overtake it); without the mark the
	// joiner noticed the origin's whole history (~300 frames).
	if s.GapsDetected > 1 {
		t.Fatalf("joiner noticed %d of the origin's sequences missing: it owed at most the new key's frame", s.GapsDetected)
	}
	t.Logf("joiner: marks asked %d, streams from a mark %d, gaps detected %d (repaired %d), keys applied %d", s.JoinMarksAsked, s.MarksUsed, s.GapsDetected, s.GapsRepaired, atJoiner.Load())
}
