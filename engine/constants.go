package engine

import "time"

// Tunables of membership in meshes above DirectLimit, where SWIM with
// Lifeguard (engine/internal/swim, driven by probe.go) replaces the
// all-to-all heartbeat. The protocol period is Heartbeat: each node probes
// one member per period whatever the mesh size.
const (
	// swimProbeTimeoutDiv: a direct probe waits Heartbeat/swimProbeTimeoutDiv
	// for its ack before k indirect probes go out (scaled by local health).
	swimProbeTimeoutDiv = 2
	// swimIndirectProbes is k, the members asked to probe a silent one.
	swimIndirectProbes = 3
	// swimSuspicionMult is α: a suspicion confirmed by k independent
	// witnesses lasts α·max(1, log10 N) periods before the member is dead.
	swimSuspicionMult = 4
	// swimSuspicionMaxMult is β: an unconfirmed suspicion lasts β times
	// longer; confirmations shrink it logarithmically (Lifeguard).
	swimSuspicionMaxMult = 6
	// swimRetransmitMult is λ: each membership update is piggybacked on
	// λ·ceil(log10(N+1)) probe frames.
	swimRetransmitMult = 4
	// swimAwarenessMax caps Lifeguard's local health multiplier: a node
	// that misses acks and nacks slows its probing down to (1+max)×.
	swimAwarenessMax = 8
	// swimPushPullMinPeriods is the shortest interval, in periods, between
	// two periodic push-pulls of one node.
	swimPushPullMinPeriods = 30
	// swimPushPullPerMemberDiv: the steady push-pull interval is
	// N × Heartbeat/swimPushPullPerMemberDiv, so that the bytes a node
	// spends on push-pull per second do not grow with N.
	swimPushPullPerMemberDiv = 2
	// swimPushPullMaxPeriods caps the steady push-pull interval: periodic
	// push-pulls begin with a digest, so between agreeing tables they cost
	// one small frame however large the mesh, and a member some node
	// missed (its join news was left to push-pull) is learned within this.
	swimPushPullMaxPeriods = 60
	// swimCatchUpPeriods: after a member joins, a node push-pulls every
	// two periods for this long, so a join wave converges in O(log N)
	// periods rather than at the dissemination queue's pace.
	swimCatchUpPeriods = 3
	// swimMaxRelays bounds the indirect probes a node runs for others at
	// once; more requests are dropped (the requester's other relays and
	// its timeout cover them).
	swimMaxRelays = 64
	// swimQueueCap: past this many queued updates, news that a member is
	// alive is left to push-pull (see swim.Machine.enqueue); suspicions,
	// deaths and leaves are always queued.
	swimQueueCap = 32
	// swimGossipMax: while more than a frame of membership updates is
	// queued, a period sends up to this many extra pings to random
	// members, one per queued frame, to spread them (swim.Config.GossipMax).
	swimGossipMax = 6
	// swimAskBatch: members heard of but not validated that the probe loop
	// challenges per wake-up (see prober.askPendingLocked).
	swimAskBatch = 64
	// swimAskScans: the probe loop looks for members to challenge at most
	// this many times per Heartbeat (up to swimAskBatch each time).
	swimAskScans = 8
	// swimProbedHold: a node pinged by a member in the last this many
	// periods runs SWIM too, whatever its own table's size (a joiner
	// among nodes that probe rather than heartbeat).
	swimProbedHold = 10
	// joinSyncRetry: a node that has validated a member but holds no
	// push-pull answer yet asks again after this many periods.
	joinSyncRetry = 1
)

// swimTimerFloor is the shortest sleep of the probe loop.
const swimTimerFloor = time.Millisecond

// Tunables of dissemination in relay trees (meshes above DirectLimit).
const (
	// treeRingFrames is the capacity, in DATA frames of any origin, of the
	// ring in which a relay keeps the frames it forwarded, to answer its
	// tree children's NACKs (relayRing). Its memory is treeRingFrames ×
	// MaxFrameSize (704 KiB at the default 1400 B), allocated on the
	// node's first relayed frame: a node that relays nothing (a small
	// mesh, a leaf of every origin's tree) has none.
	treeRingFrames = 512
	// treeParentWindow, per relay hop of the tree, is how long a receiver
	// asks its tree parent for a missing frame before it asks the origin:
	// its parent may be missing it too and repairing it from its own
	// parent, and then relays the repair down.
	treeParentWindow = 20 * time.Millisecond
	// treeParentSilence: a tree parent that has not answered a NACK at
	// all since the gap opened is still asked, not the origin, for this
	// many parent windows (receiver.askParent); one that says it misses
	// the frames too, for up to half RepairTimeout.
	treeParentSilence = 4
	// treeHoldMax: a high-water mark from an IHAVE or a control frame
	// (ahead of the tree) is held while the node is busy receiving other
	// origins' frames, at most this long (receiver.treeHold).
	treeHoldMax = 10 * time.Second
	// treeBusyWindow: a node that had a first copy of another origin
	// within this long is busy receiving (receiver.treeHold); longer than
	// a loaded machine leaves one node's goroutines unscheduled.
	treeBusyWindow = time.Second
)

// Tunables of Plumtree's lazy push in relay trees (plumtree.go, driving
// engine/internal/plumtree).
const (
	// treeIHaveInterval is the shortest time between two IHAVE rounds of
	// one node; a round names every origin whose held frames advanced.
	treeIHaveInterval = 100 * time.Millisecond
	// treeReannounce: an origin whose held frames advanced is announced
	// again, unchanged, every round for this long (to the next members
	// in turn): a node that no tree reaches may hear of the frames only
	// from IHAVEs, and one round reaches treeLazyPeers members (a 200-node
	// mesh left one with 500 silent misses when only advances were
	// announced).
	treeReannounce = 2 * time.Second
	// treeLazyPeers is how many members each IHAVE round goes to, chosen
	// in turn over the whole view.
	treeLazyPeers = 2
	// treeGraftTimeout, per relay hop of the tree: frames a lazy peer
	// announced that have not arrived this long after are grafted for.
	// It is three high-water holds (treeHWMDelay): the frames' own way
	// down the tree, then a NACK to the tree parent (treeParentWindow,
	// which also adopts us when its tree skips us: repair.go) come first;
	// a graft of frames merely slow on a loaded machine would push that
	// origin's frames twice until a PRUNE (N=100, 10 origins, TestScale:
	// 1.03-1.09 copies per frame at one hold, 1.02 without grafts).
	treeGraftTimeout = 60 * time.Millisecond
	// treeGraftGiveUp: a graft that brought nothing this long after is
	// dropped; the stream's NACKs and Gap rules answer for the frames.
	treeGraftGiveUp = 200 * time.Millisecond
	// treePruneHold: at most one PRUNE per origin per hold.
	treePruneHold = 20 * time.Millisecond
	// treeMaxOrigins bounds the origins the Plumtree state tracks (about
	// 600 B each); more are refused (still repaired by NACKs).
	treeMaxOrigins = 1024
)
