package engine

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"net/netip"
	"sync"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/sockopt"
)

// Address validation. An address learned from a third party (a digest
// entry) or from an unauthenticated packet may be anyone's: a forged
// member must never aim heartbeats, data or retransmissions at a victim.
// So a node sends such an address nothing but a CHALLENGE until a
// RESPONSE echoes the challenge's cookie, as QUIC validates a client's
// address. The cookie is stateless: a keyed hash (HMAC-SHA256, truncated
// to codec.CookieLen) of the address challenged, the cluster and the
// challenger's clock, under a random secret that rotates every
// cookieRotate and never leaves the node. A cookie is good for
// cookieLifetime after it was issued, so a RESPONSE captured earlier
// cannot be replayed later. Only the challenger's own clock is involved
// (it writes the time and reads it back): nodes need not agree on time,
// and a clock step at worst voids the challenges in flight.
//
// Before validation a node spends on an address only challenges, and only
//   - in answer to a received packet, at most challengeCredit times that
//     packet's size in challenges in all, whatever its digest names;
//   - at most challengeAttempts times per address per challengeWindow, and
//     not again within challengeRetry;
//
// challenges to addresses other than the asking packet's source share
// Options.ChallengeRate (thirdPartyRate by default); and it answers each CHALLENGE with one RESPONSE of the
// same size, at most responseRate per second. So what it sends toward an
// address that never answered stays below challengeCredit (3×) times what
// was sent to it by whoever named that address, and within a small
// constant per address. Members declared dead are probed the same way
// (probe), paced by the heartbeat loop.
//
// A valid RESPONSE validates its sender's id at the address challenged,
// wherever it came from (behind NAT the source differs; the cookie proves
// the challenge was received there), unless that id is a live member at
// another address (membership.validated).

const (
	cookieRotate      = 10 * time.Second // secret rotation; the previous secret still verifies
	cookieLifetime    = 10 * time.Second // a cookie older than this is refused (≤ cookieRotate)
	cookieFutureSlack = time.Second      // a cookie "from the future": the clock stepped back
	challengeCredit   = 3                // challenge bytes per byte of the packet that asked for them
	challengeAttempts = 4                // challenges per address per window
	challengeWindow   = 5 * time.Second
	challengeRetry    = 20 * time.Millisecond // between two challenges to one address
	thirdPartyRate    = DefaultChallengeRate  // challenges per second to addresses a packet did not come from (Options.ChallengeRate)
	maxChallenged     = 8192                  // addresses tracked; expired, then arbitrary ones go when full
	responseRate      = 2000                  // RESPONSEs per second at most
	// The RESPONSE bucket's depth. In a cold start every member
	// challenges every other within a period or two: a burst of a tenth
	// of a second left most challenges unanswered until the next period
	// (measured at N=1000: 40% of RESPONSEs suppressed). A full second's
	// worth still bounds what a flood costs: 2000 RESPONSEs, each the size
	// of the CHALLENGE it answers. The third-party bucket holds half a
	// second of ChallengeRate.
	responseBurst = responseRate
)

// challengeRec is what the validator remembers of one challenged address.
type challengeRec struct {
	since    time.Time // start of the current window
	last     time.Time // last challenge sent
	attempts int       // challenges in the current window
}

// validator issues and checks cookies and paces challenges. Its methods are
// called from the receive path; mu makes it safe from anywhere.
type validator struct {
	n         *Node
	mu        sync.Mutex
	macs      [2]hash.Hash // current and previous secret
	rotated   time.Time
	sum       [sha256.Size]byte
	in        []byte
	table     map[netip.AddrPort]*challengeRec
	third     tokenBucket // challenges to third-party addresses
	responses tokenBucket
	buf       []byte
	msg       [1]sockopt.Message
	sc        sealScratch
}

func (v *validator) init(n *Node) {
	v.n = n
	v.table = make(map[netip.AddrPort]*challengeRec)
	v.responses = tokenBucket{rate: responseRate, burst: responseBurst}
	v.third = tokenBucket{rate: float64(n.cfg.ChallengeRate), burst: float64(max(n.cfg.ChallengeRate/2, 1))}
	v.buf = make([]byte, 0, codec.HeaderLen+codec.ChallengeLen+codec.TagLen)
	v.in = make([]byte, 0, 8+codec.AddrLen+8)
	v.rotateLocked(time.Now())
	v.rotateLocked(time.Now())
}

// rotateLocked makes a new current secret; the old one stays to verify.
func (v *validator) rotateLocked(now time.Time) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		panic("engine: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	v.macs[1] = v.macs[0]
	v.macs[0] = hmac.New(sha256.New, key[:]) // allocates; every cookieRotate
	v.rotated = now
}

// cookieLocked computes the cookie of (addr, t) under secret i.
func (v *validator) cookieLocked(i int, addr netip.AddrPort, t uint64, dst *[codec.CookieLen]byte) {
	mac := v.macs[i]
	v.in = binary.BigEndian.AppendUint64(v.in[:0], t)
	v.in = codec.AppendAddr(v.in, addr)
	v.in = binary.BigEndian.AppendUint64(v.in, v.n.cfg.cluster)
	mac.Reset()
	mac.Write(v.in)
	copy(dst[:], mac.Sum(v.sum[:0]))
}

// challenge sends a CHALLENGE to addr if the pacing rules allow and the
// asking packet's credit (in bytes, decremented) covers it. direct says
// addr is the asking packet's source (a node introducing itself); other
// addresses (digest entries, an address advertised from elsewhere) share
// thirdPartyRate, so a flood of forged digests neither costs more than a
// bounded rate of work nor starves a newcomer's own challenge. It reports
// whether one was sent.
func (v *validator) challenge(addr netip.AddrPort, direct bool, credit *int, now time.Time) bool {
	n := v.n
	if !addr.IsValid() || addr == n.cfg.advertise {
		return false
	}
	size := codec.HeaderLen + codec.ChallengeLen
	if n.sealing() {
		size += codec.TagLen
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if *credit < size {
		n.ctr.challengesSuppressed.Add(1)
		return false
	}
	rec := v.table[addr]
	switch {
	case rec == nil:
		if len(v.table) >= maxChallenged {
			v.sweepLocked(now)
		}
		rec = &challengeRec{since: now} // allocates once per address challenged
		v.table[addr] = rec
	case now.Sub(rec.since) >= challengeWindow:
		rec.since, rec.attempts = now, 0
	case rec.attempts >= challengeAttempts || now.Sub(rec.last) < challengeRetry:
		n.ctr.challengesSuppressed.Add(1)
		return false
	}
	if !direct && !v.third.take(now) {
		n.ctr.challengesSuppressed.Add(1)
		return false
	}
	rec.attempts++
	rec.last = now
	*credit -= size
	if now.Sub(v.rotated) >= cookieRotate {
		v.rotateLocked(now)
	}
	c := codec.Challenge{Time: uint64(now.UnixMilli()), Addr: addr}
	v.cookieLocked(0, addr, c.Time, &c.Cookie)
	v.sendLocked(codec.TypeChallenge, &c, addr)
	n.ctr.challengesSent.Add(1)
	return true
}

// probe sends a CHALLENGE to a validated member declared dead (the
// heartbeat loop paces it: membership.deadTargets). It skips the
// per-address attempts, which exist for addresses an attacker names; it
// shares the third-party rate.
func (v *validator) probe(addr netip.AddrPort, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.third.take(now) {
		v.n.ctr.challengesSuppressed.Add(1)
		return
	}
	if now.Sub(v.rotated) >= cookieRotate {
		v.rotateLocked(now)
	}
	c := codec.Challenge{Time: uint64(now.UnixMilli()), Addr: addr}
	v.cookieLocked(0, addr, c.Time, &c.Cookie)
	v.sendLocked(codec.TypeChallenge, &c, addr)
	v.n.ctr.challengesSent.Add(1)
}

// sweepLocked makes room in a full table: expired windows first, then
// whatever map order yields (a random pick), down to three quarters.
func (v *validator) sweepLocked(now time.Time) {
	for a, rec := range v.table {
		if now.Sub(rec.since) >= challengeWindow {
			delete(v.table, a)
		}
	}
	for a := range v.table {
		if len(v.table) < maxChallenged*3/4 {
			break
		}
		delete(v.table, a)
	}
}

// sendLocked writes a CHALLENGE or RESPONSE carrying c to to.
func (v *validator) sendLocked(t codec.FrameType, c *codec.Challenge, to netip.AddrPort) {
	n := v.n
	h := n.controlHeader(t)
	h.PayloadLen = codec.ChallengeLen
	b := codec.AppendHeader(v.buf[:0], &h)
	b = codec.AppendChallenge(b, c)
	b = n.sealFrame(b, &h, &v.sc)
	v.buf = b
	v.msg[0] = sockopt.Message{Buf: b, Addr: to}
	n.write(v.msg[:1])
}

// frame handles a CHALLENGE (answer it) or a RESPONSE (check the cookie,
// then validate the sender). A CHALLENGE skips the replay window:
// answering one twice costs what it cost to send it. It reports whether
// the frame is a RESPONSE with a good cookie that membership accepted: a
// trusted control frame of its sender, whose epoch and high-water mark the
// caller then takes.
func (v *validator) frame(h *codec.Header, payload []byte, from netip.AddrPort, now time.Time) bool {
	n := v.n
	c, _, err := codec.ParseChallenge(payload)
	if err != nil {
		n.ctr.drop(DropMalformed)
		return false
	}
	if h.Type == codec.TypeChallenge {
		v.mu.Lock()
		answered := v.responses.take(now)
		if answered {
			v.sendLocked(codec.TypeResponse, &c, from)
			n.ctr.responsesSent.Add(1)
		} else {
			n.ctr.responsesSuppressed.Add(1)
		}
		v.mu.Unlock()
		if to, ok := n.members.pendingAddr(h.Origin); answered && ok {
			// A challenger we heard of (gossip named its address) is about
			// to know us: validate it back at once at that address, so
			// that knowledge is mutual within a round trip (SWIM probes a
			// member only it has validated, and the member answers only
			// one it has validated too). Otherwise its greeting, which
			// names its address, starts our challenge.
			credit := challengeCredit * codec.FrameLen(h)
			v.challenge(to, to == from, &credit, now)
		}
		return false
	}
	if !v.verify(&c, now) {
		n.ctr.drop(DropBadCookie)
		return false
	}
	n.ctr.validations.Add(1)
	accepted, greet := n.members.validated(h.Origin, h.Epoch, c.Addr, from, h.Packet, now)
	if greet {
		n.hb.reply(c.Addr) // it may not know us yet
	}
	return accepted
}

// verify checks a RESPONSE's cookie: issued by this node, for its address,
// within cookieLifetime. Compares in constant time.
func (v *validator) verify(c *codec.Challenge, now time.Time) bool {
	issued := time.UnixMilli(int64(c.Time))
	if age := now.Sub(issued); age > cookieLifetime || age < -cookieFutureSlack {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var want [codec.CookieLen]byte
	for i := range v.macs {
		if v.macs[i] == nil {
			continue
		}
		v.cookieLocked(i, c.Addr, c.Time, &want)
		if subtle.ConstantTimeCompare(want[:], c.Cookie[:]) == 1 {
			delete(v.table, c.Addr)
			return true
		}
	}
	return false
}

// admitVerdict is what admit decided about a control frame.
type admitVerdict uint8

const (
	admitPass     admitVerdict = iota // on to the replay window and its handler
	admitDrop                         // counted and dropped
	admitStranger                     // an ALIVE from a node not validated yet: challenge only
)

// admit screens a control frame before the replay window (see
// membership.admit), counting what it drops and challenging the address
// of a member that claims a new epoch. A node not validated yet gets no
// origin state from its control frames: its ALIVE is a stranger's (the
// caller challenges it), anything else is dropped.
func (n *Node) admit(h *codec.Header, payload []byte, from netip.AddrPort, authed bool, now time.Time) admitVerdict {
	ok, why, challenge := n.members.admit(h, payload, from, authed, now)
	switch {
	case ok:
		return admitPass
	case why == DropUnknownMember && h.Type == codec.TypeAlive:
		return admitStranger
	case why == DropUnknownMember && (h.Type == codec.TypeProbe || h.Type == codec.TypeSync):
		// A member that knows us first (SWIM): prove the address gossip
		// gave for it, if any, else the address its frame came from.
		challenge, _ = n.members.pendingAddr(h.Origin)
		if !challenge.IsValid() {
			challenge = from
		}
	}
	n.ctr.drop(why)
	credit := challengeCredit * codec.FrameLen(h)
	if why == DropUnknownMember && h.Type == codec.TypeProbe {
		// Its ping is answered where it came from, with a bare ack (no
		// membership news goes to an address not validated), out of the
		// ping's credit: the member then does not suspect us for being
		// slower to validate it than it was to validate us, which in a
		// cold start or a restart wave is most of its first probes.
		if pr, off, err := codec.ParseProbe(payload); err == nil && pr.Kind == codec.ProbePing && pr.Target == n.id {
			n.hb.pr.ackStranger(from, pr.Seq, &credit)
			if authed {
				// A key holder that knows us first may be telling us we
				// are suspected (Lifeguard's buddy rule puts that first
				// in a ping to a suspect): refute now, not when gossip
				// brings the suspicion round. Only news about ourselves
				// is read from a stranger.
				n.hb.pr.refuteFromStranger(h, payload[off:], now)
			}
		}
	}
	if challenge.IsValid() {
		n.val.challenge(challenge, challenge == from, &credit, now)
	}
	return admitDrop
}
