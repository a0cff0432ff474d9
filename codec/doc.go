// Package codec is Warp Mesh's wire format, version 1: it turns frames into
// bytes and bytes into frames (header, invalidation records, heartbeats,
// leaves, NACKs, high-water marks). It owns the layout and every bounds
// check on it. codec never allocates on encode or decode, never touches a
// socket, never panics on any input, and holds no state: encoders are
// AppendX(dst, ...) []byte, decoders ParseX(b) (x, n, err) returning the
// sentinel ErrX of the first rule broken. Keys and payloads it returns are
// views into the caller's buffer.
//
// # Wire format
//
// Every integer is big-endian (network order). A datagram is one frame:
//
//	+---------------+------------------------+-------------------------+------------------------+
//	| header (56 B) | payload (PayloadLen B) | tag (16 B) iff FlagAuth | zeros iff FlagPadded   |
//	+---------------+------------------------+-------------------------+------------------------+
//
// Its length must be exactly HeaderLen + PayloadLen (+ TagLen), at most
// MaxFrameSize; anything else is ErrBadLength or ErrFrameTooLarge. A frame
// with FlagPadded may be followed by zero bytes up to the datagram's end,
// so that frames of slightly different sizes can travel as equal-size
// segments of one UDP GSO send; non-zero padding is ErrBadLength.
//
// # Frame header
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-------------------------------+---------------+---------------+
//	|        magic 0x574D "WM"      |  version = 1  |     type      |  0
//	+---------------+---------------+---------------+---------------+
//	|     flags     |  hdrlen = 56  |     hops      |   hop limit   |  4
//	+---------------+---------------+---------------+---------------+
//	|                 cluster hash (u64, ClusterHash)               |  8
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                      origin node id (u64)                     | 16
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                    origin boot epoch (u64)                    | 24
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                          seq (u64)                            | 32
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                     packet number (u64)                       | 40
//	+                                                               +
//	|                                                               |
//	+-------------------------------+-------------------------------+
//	|          count (u16)          |     payload length (u16)      | 48
//	+-------------------------------+-------------------------------+
//	|                     reserved (u32) = 0                        | 52
//	+---------------------------------------------------------------+
//	|                     payload ...                               | 56
//
//	type     1 DATA, 2 ALIVE, 3 LEAVE, 4 NACK, 5 HWM, 6 ACK, 7 JOIN,
//	         8 CHALLENGE, 9 RESPONSE, 10 PROBE, 11 SYNC, 12 IHAVE,
//	         13 GRAFT, 14 PRUNE; else ErrBadType
//	flags    bit 0 FlagAuth: a 16-byte AEAD tag trails the payload
//	         bit 1 FlagRetransmit: DATA resent for a NACK (DATA only)
//	         bit 2 FlagPadded: zero padding may follow the frame
//	         bits 3-7 reserved; set bits are ErrBadFlags
//	hops     relay hops so far (0 at the origin). The only field a relay
//	         changes (SetHops); authentication therefore covers the
//	         header with hops zeroed as AAD (HeaderAAD, AppendAAD).
//	seq      DATA: data sequence per (origin, epoch), from 1, one per
//	         DATA frame (a retransmission keeps its seq). HWM: the
//	         origin's high-water data seq. ALIVE, LEAVE, NACK: by
//	         convention the sender's high-water data seq; codec does not
//	         interpret it.
//	packet   counter per (origin, epoch) over every frame the node seals
//	         and sends (retransmits and heartbeats too); never repeats
//	         within an epoch: the AEAD nonce source.
//	count    DATA: records; ALIVE, SYNC: digest entries; NACK: ranges;
//	         PROBE: updates; IHAVE, GRAFT, PRUNE: tree entries (>= 1);
//	         LEAVE, HWM, ACK, JOIN, CHALLENGE, RESPONSE: 0.
//
// # DATA payload: Count >= 1 records back to back
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-------------------------------+---------------+---------------+
//	|        key length (u16)       |  rec flags    | reserved = 0  |  0
//	+-------------------------------+---------------+---------------+
//	|                  xxhash64 of key (u64)                        |  4
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|        key (key length bytes, 1..MaxKeyLen) ...               | 12
//
//	rec flags  exactly one of bit 0 RecordExact (this key) and bit 1
//	           RecordPrefix (every key starting with it); else
//	           ErrBadRecordFlags. The hash is verified (ErrBadHash).
//
// # Address (AddrLen = 18 bytes, inside ALIVE and digest entries)
//
//	+---------------------------------------------------------------+
//	|   IPv6 address, or IPv4 as v4-mapped ::ffff:a.b.c.d (16 B)    |  0
//	+-------------------------------+-------------------------------+
//	|          port (u16)           |                                 16
//	+-------------------------------+
//
// All 18 bytes zero means "no address". Otherwise a unicast address with a
// non-zero port (ParseAddr lists what is rejected).
//
// # ALIVE payload: fixed part (AliveFixedLen = 36), then Count digest entries
//
//	+---------------------------------------------------------------+
//	|                 sender incarnation (u64)                      |  0
//	+---------------------------------------------------------------+
//	|               sender data high-water seq (u64)                |  8
//	+---------------------------------------------------------------+
//	|               sender advertised address (18 B)                | 16
//	+-------------------------------+-------------------------------+
//	|        reserved (u16) = 0     |                                 34
//	+-------------------------------+
//
//	digest entry (DigestEntryLen = 44 bytes), one per known member:
//	+---------------------------------------------------------------+
//	|                       member id (u64)                         |  0
//	+---------------------------------------------------------------+
//	|                   member boot epoch (u64)                     |  8
//	+---------------------------------------------------------------+
//	|                  member incarnation (u64)                     | 16
//	+---------------------------------------------------------------+
//	|                    member address (18 B)                      | 24
//	+---------------+---------------+-------------------------------+
//	|    state      | reserved = 0  |                                 42
//	+---------------+---------------+
//
//	state  1 alive, 2 suspect, 3 dead, 4 left; else ErrBadState
//
// # LEAVE payload (LeaveLen = 8), Count = 0
//
//	+---------------------------------------------------------------+
//	|               incarnation of the leaving node (u64)           |  0
//	+---------------------------------------------------------------+
//
// # NACK payload: fixed part (NackFixedLen = 16), then Count >= 1 ranges
//
//	+---------------------------------------------------------------+
//	|          origin whose DATA frames are missing (u64)           |  0
//	+---------------------------------------------------------------+
//	|                  that origin's boot epoch (u64)               |  8
//	+---------------------------------------------------------------+
//
//	sequence range (SeqRangeLen = 16), inclusive, 1 <= first <= last:
//	+---------------------------------------------------------------+
//	|                       first seq (u64)                         |  0
//	+---------------------------------------------------------------+
//	|                        last seq (u64)                         |  8
//	+---------------------------------------------------------------+
//
// The header's origin is the node asking; the answer is DATA frames with
// FlagRetransmit and their original seq.
//
// # HWM payload: empty, Count = 0
//
// The header's seq is the origin's high-water data seq, sent when the
// origin goes idle so that a lost final DATA frame is noticed.
//
// # ACK payload (AckLen = 24), Count = 0
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------------------------------------------------------+
//	|                   target origin id (u64)                      |  0
//	+---------------------------------------------------------------+
//	|                   target origin epoch (u64)                   |  8
//	+---------------------------------------------------------------+
//	|            cumulative seq: all <= it applied (u64)            | 16
//	+---------------------------------------------------------------+
//
// The header's origin is the receiver reporting its progress; the target
// origin paces its sending by its slowest receiver's reports.
//
// # JOIN payload (JoinLen = 24), Count = 0
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------+-----------------------------------------------+
//	|     kind      |              reserved (7 B) = 0               |  0
//	+---------------+                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                        member id (u64)                        |  8
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                        from seq (u64)                         | 16
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//
//	kind    1 ask: the header's origin (a receiver) asks the origin
//	          named by member id from which seq of that origin's current
//	          epoch it is in the origin's fan-out; from seq = 0.
//	        2 answer: the header's origin (the origin) tells the receiver
//	          named by member id that every DATA frame of the header's
//	          epoch from seq "from" (>= 1) on is sent to it.
//	        3 marks: the header's origin (a node not ready yet) asks the
//	          member named by member id for its stream marks (a SYNC of
//	          kind 4 answers); from seq = 0.
//	        else ErrBadJoin.
//
// A receiver owes repair (or a Gap) for every sequence from "from" on;
// nothing before it was meant for it, unless it was already coherent with
// the mesh when it first heard of that epoch, in which case it expects the
// epoch from just after the mark a member's SYNC marks gave it before it
// was coherent, or from seq 1.
//
// # CHALLENGE and RESPONSE payload (ChallengeLen = 44), Count = 0
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------------------------------------------------------+
//	|          challenger's time when the cookie was issued (u64)   |  0
//	+---------------------------------------------------------------+
//	|              address the challenge was sent to (18 B)         |  8
//	+-------------------------------+-------------------------------+
//	|        reserved (u16) = 0     |                                 26
//	+-------------------------------+-------------------------------+
//	|                     cookie (CookieLen = 16 B)                 | 28
//	+---------------------------------------------------------------+
//
// A node sends a CHALLENGE to an address before it sends it anything else
// (address validation); whoever receives it answers with a RESPONSE that
// echoes the payload unchanged, its own id and epoch in the header. Time
// and cookie mean something only to the challenger (a keyed hash of the
// address and time); the address must be a real one (all zero is
// ErrBadAddr).
//
// # PROBE payload: fixed part (ProbeFixedLen = 44), then Count updates
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------+-----------------------------------------------+
//	|     kind      |              reserved (7 B) = 0               |  0
//	+---------------+                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                 probe seq (u64, the prober's)                 |  8
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                    target member id (u64)                     | 16
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|              target address (18 B, may be zero)               | 24
//	+-------------------------------+-------------------------------+
//	|        reserved (u16) = 0     |                                 42
//	+-------------------------------+
//
//	kind    1 ping: the target is the receiver; it answers with an ack.
//	        2 ping-req: the receiver pings the target (address
//	          required) and acks to the sender with the sender's seq,
//	          or nacks when the target stays silent.
//	        3 ack: the target answered probe seq.
//	        4 nack: the relay probed the target for seq in vain.
//	        else ErrBadProbe.
//
//	update (UpdateLen = 52 bytes), piggybacked membership news:
//	+---------------------------------------------------------------+
//	|                       member id (u64)                         |  0
//	+---------------------------------------------------------------+
//	|                   member boot epoch (u64)                     |  8
//	+---------------------------------------------------------------+
//	|                  member incarnation (u64)                     | 16
//	+---------------------------------------------------------------+
//	|                    member address (18 B)                      | 24
//	+---------------+---------------+-------------------------------+
//	|    state      | reserved = 0  |                                 42
//	+---------------+---------------+-------------------------------+
//	|          asserted by: the node that suspected, ... (u64)      | 44
//	+---------------------------------------------------------------+
//
//	state  1 alive, 2 suspect, 3 dead, 4 left; else ErrBadState
//
// # SYNC payload: fixed part (SyncFixedLen = 8), then Count digest entries
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------+---------------+-------------------------------+
//	|     kind      | reserved = 0  |          part (u16)           |  0
//	+---------------+---------------+-------------------------------+
//	|          parts (u16)          |        reserved (u16) = 0     |  4
//	+-------------------------------+-------------------------------+
//
//	kind    1 push: the sender's member table; answer with yours.
//	        2 reply: the answer to a push; not answered.
//	        3 digest: a summary of the sender's table (below, Count = 0,
//	          part 0 of 1); a receiver whose table sums differently
//	          pushes its own.
//	        4 marks: the answer to a JOIN marks request: Count tree
//	          entries (as in IHAVE, below), each an origin's epoch and a
//	          seq >= 1 of it the sender knows was published (its own last
//	          sent, or what it received without a gap); seq 0,
//	          ErrBadSync. A sender without marks sends part 0 of 1 with
//	          none.
//	        else ErrBadSync. part < parts, else ErrBadSync.
//
// A push-pull sends the whole member table, part 0 first, in as many
// frames as it takes (digest entries as in ALIVE); the receiver of a push
// answers once, when part 0 arrives. A periodic push-pull between nodes
// that already agree starts with a digest and ends there:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------------------------------------------------------+
//	|                     table hash (u64)                          |  8
//	+-------------------------------+-------------------------------+
//	|         members (u32)         |       reserved (u32) = 0      | 16
//	+-------------------------------+-------------------------------+
//
//	(offsets from the start of the payload; SyncSumLen = 16 after the
//	fixed part; reserved set, ErrBadSync)
//
// # IHAVE, GRAFT and PRUNE payload: Count >= 1 tree entries
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------------------------------------------------------+
//	|                        origin id (u64)                        |  0
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                   origin's boot epoch (u64)                   |  8
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//	|                          seq (u64)                            | 16
//	+                                                               +
//	|                                                               |
//	+---------------------------------------------------------------+
//
//	IHAVE  seq: every DATA seq of the origin's epoch up to seq the
//	       sender holds (lazy push, to members outside its tree edges;
//	       and a relay's answer to a tree child's NACK for frames it
//	       misses too, where seq may be 0: none yet).
//	GRAFT  seq >= 1: resend the origin's frames from seq on, and push
//	       its DATA frames to the sender from now on.
//	PRUNE  seq == 0: stop pushing the origin's frames to the sender.
//	       Otherwise ErrBadTree; no entries is ErrBadTree too.
//
// These three heal a relay tree whose members' views disagree (Plumtree):
// a node that hears of frames it lacks and that do not arrive GRAFTs the
// announcer; a node that gets a frame twice PRUNEs the sender that is not
// its tree parent.
//
// # Tag
//
// With FlagAuth, TagLen bytes follow the payload. codec only reserves and
// locates them (FrameBuilder budgets for them, ParseFrame returns them as
// Frame.Tag); sealing and opening belong to the engine.
package codec
