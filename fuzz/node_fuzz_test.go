package fuzz

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warpmesh/warpmesh/codec"
	"github.com/warpmesh/warpmesh/engine"
	"github.com/warpmesh/warpmesh/sockopt"
)

// FuzzNodeReceive feeds arbitrary datagrams into the receive path of two
// live nodes, one plaintext and one with a keyring, created once per fuzz
// process and reused across inputs (state accumulates, as in a real node).
// Properties: no input panics or stalls the worker; the keyed node never
// applies an invalidation and never adds a member, whatever arrives
// without its key.
//
// Synchronisation: the test transport hands the node exactly the
// datagrams the test injects (the node's own sends are discarded), and the
// worker handles them in order, so after injecting the input and a fence
// datagram, Stats().FramesReceived reaching the count means the input was
// handled completely.

// nodeTargetID is the nodes' id, so seeds can NACK them by name.
const nodeTargetID = 0x0F0F_0E0E_0D0D_0C0C

// chanTransport is an engine.Transport fed by the test: ReadBatch returns
// injected datagrams; WriteBatch discards everything (nothing loops back).
type chanTransport struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	wrote  atomic.Uint64
}

func newChanTransport() *chanTransport {
	return &chanTransport{in: make(chan []byte, 4), closed: make(chan struct{})}
}

func (c *chanTransport) ReadBatch(msgs []sockopt.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	k := 0
	select {
	case b := <-c.in:
		c.fill(&msgs[0], b)
		k++
	case <-c.closed:
		return 0, fmt.Errorf("fuzz transport: %w", net.ErrClosed)
	}
	for k < len(msgs) {
		select {
		case b := <-c.in:
			c.fill(&msgs[k], b)
			k++
		default:
			return k, nil
		}
	}
	return k, nil
}

func (c *chanTransport) fill(m *sockopt.Message, b []byte) {
	m.N = copy(m.Buf, b)
	m.Addr = netip.MustParseAddrPort("10.9.9.9:7946")
	m.SegSize = 0
}

func (c *chanTransport) WriteBatch(msgs []sockopt.Message) (int, error) {
	select {
	case <-c.closed:
		return 0, fmt.Errorf("fuzz transport: %w", net.ErrClosed)
	default:
	}
	c.wrote.Add(uint64(len(msgs)))
	return len(msgs), nil
}

func (c *chanTransport) LocalAddr() netip.AddrPort { return netip.MustParseAddrPort("10.0.0.1:7946") }

func (c *chanTransport) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// fuzzNode is one target node and what it has done.
type fuzzNode struct {
	node    *engine.Node
	tr      *chanTransport
	applied atomic.Uint64
	joins   atomic.Uint64
	stalled atomic.Bool // an earlier input wedged the worker
}

var (
	nodesOnce  sync.Once
	nodesErr   error
	plainNode  *fuzzNode
	keyedNode  *fuzzNode
	fenceFrame = []byte{0x57} // one byte: dropped as short
)

func startFuzzNodes() {
	if plainNode, nodesErr = newFuzzNode(nil); nodesErr != nil {
		return
	}
	key := make([]byte, engine.KeySize)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	ring, err := engine.NewKeyring(key)
	if err != nil {
		nodesErr = err
		return
	}
	keyedNode, nodesErr = newFuzzNode(ring)
}

func newFuzzNode(ring *engine.Keyring) (*fuzzNode, error) {
	tr := newChanTransport()
	n, err := engine.New(engine.Options{
		Transport:     tr,
		AdvertiseAddr: tr.LocalAddr().String(),
		Cluster:       "fuzz", // seeds carry its hash, so they pass the cluster check
		NodeID:        nodeTargetID,
		Keyring:       ring,
		Heartbeat:     50 * time.Millisecond, // fuzzed members die and are reaped quickly
		RepairTimeout: 50 * time.Millisecond,
		PublishRing:   1 << 14,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	fn := &fuzzNode{node: n, tr: tr}
	n.OnInvalidate(func(engine.Invalidation) { fn.applied.Add(1) })
	n.OnEvent(func(e engine.Event) {
		if e.Type == engine.EventJoin {
			fn.joins.Add(1)
		}
	})
	return fn, nil
}

// inject hands b to the node, then a fence, and waits until the worker has
// counted both.
func (f *fuzzNode) inject(t *testing.T, b []byte) {
	t.Helper()
	if f.stalled.Load() {
		t.Fatal("receive path stalled by an earlier input")
	}
	want := f.node.Stats().FramesReceived + 2
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, d := range [][]byte{b, fenceFrame} {
		select {
		case f.tr.in <- d:
		case <-ctx.Done():
			f.stalled.Store(true)
			t.Fatalf("receive path stalled: input not taken within 10s")
		}
	}
	for f.node.Stats().FramesReceived < want {
		if ctx.Err() != nil {
			f.stalled.Store(true)
			t.Fatalf("receive path stalled: FramesReceived %d, want %d", f.node.Stats().FramesReceived, want)
		}
		time.Sleep(50 * time.Microsecond) // polling interval, not synchronisation
	}
}

func FuzzNodeReceive(f *testing.F) {
	for _, s := range nodeSeeds() {
		f.Add(s)
	}
	nodesOnce.Do(startFuzzNodes)
	if nodesErr != nil {
		f.Fatalf("starting nodes: %v", nodesErr)
	}
	// ACKs of the nodes' own streams (their epochs are known only now), so
	// the fuzzer reaches flow control's bookkeeping.
	for _, fn := range []*fuzzNode{plainNode, keyedNode} {
		f.Add(seedFrame(seedHeader, codec.TypeAck, 0, codec.AppendAck(nil, &codec.Ack{Origin: nodeTargetID, Epoch: fn.node.Epoch(), Cum: 3})))
	}
	f.Fuzz(func(t *testing.T, datagram []byte) {
		plainNode.inject(t, datagram)
		keyedNode.inject(t, datagram)
		if a := keyedNode.applied.Load(); a != 0 {
			t.Fatalf("keyed node applied %d invalidations from unauthenticated input", a)
		}
		if j, m := keyedNode.joins.Load(), len(keyedNode.node.Members()); j != 0 || m != 0 {
			t.Fatalf("keyed node added members from unauthenticated input: %d joins, %d members", j, m)
		}
		if s := keyedNode.node.Stats(); s.DataFrames != 0 || s.RecordsReceived != 0 || s.HeartbeatsReceived != 0 {
			t.Fatalf("keyed node accepted unauthenticated frames: data %d records %d heartbeats %d",
				s.DataFrames, s.RecordsReceived, s.HeartbeatsReceived)
		}
	})
}

// nodeSeeds are real frames of every type in frameKinds, built by codec,
// that pass the nodes' cluster check, so the fuzzer starts deep in the
// receive path; then frames aimed at particular paths (first and far
// sequences, NACKs and ACKs naming the node).
func nodeSeeds() [][]byte {
	auth := seedHeader
	auth.Flags = codec.FlagAuth
	retrans := seedHeader
	retrans.Flags, retrans.Hops = codec.FlagRetransmit, 1
	first := seedHeader
	first.Seq, first.Packet = 1, 1
	far := seedHeader
	far.Seq, far.Packet = 1<<40, 2
	hwmMax := seedHeader
	hwmMax.Seq, hwmMax.Packet = math.MaxUint64, 3
	nackUs := codec.AppendNack(nil, &codec.Nack{Origin: nodeTargetID, Epoch: 1})
	nackUs = codec.AppendSeqRange(nackUs, codec.SeqRange{First: 1, Last: 3})
	unavail := codec.AppendNack(nil, &codec.Nack{Origin: seedHeader.Origin, Epoch: seedHeader.Epoch})
	unavail = codec.AppendSeqRange(unavail, codec.SeqRange{First: 40, Last: 41})
	self := []codec.DigestEntry{{ID: nodeTargetID, Epoch: 1, Incarnation: 9, Addr: seedAddr4, State: codec.StateSuspect}}
	ackUs := codec.AppendAck(nil, &codec.Ack{Origin: nodeTargetID, Epoch: 1, Cum: 5})
	askUs := codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinAsk, Member: nodeTargetID})
	welcome := codec.AppendJoin(nil, &codec.Join{Kind: codec.JoinAnswer, Member: nodeTargetID, From: 2})
	var out [][]byte
	for _, k := range frameKinds { // every type, plain and sealed
		for _, s := range k.seeds() {
			out = append(out, seedFrame(seedHeader, k.typ, s.count, s.payload),
				append(seedFrame(auth, k.typ, s.count, s.payload), seedTag...))
		}
	}
	return append(out,
		seedData(first, "user:1"),
		seedData(seedHeader, "user:42", "session:"),
		seedData(retrans, "user:42"),
		seedData(far, "far"),
		append(seedData(auth, "k"), seedTag...),
		seedFrame(seedHeader, codec.TypeAlive, uint16(len(seedDigest)), seedAlivePayload(seedDigest)),
		seedFrame(seedHeader, codec.TypeAlive, 1, seedAlivePayload(self)),
		append(seedFrame(auth, codec.TypeAlive, 1, seedAlivePayload(seedDigest[:1])), seedTag...),
		seedFrame(seedHeader, codec.TypeLeave, 0, codec.AppendLeave(nil, 6)),
		seedFrame(seedHeader, codec.TypeNack, 1, nackUs),
		seedFrame(seedHeader, codec.TypeNack, 1, unavail),
		seedFrame(hwmMax, codec.TypeHWM, 0, nil),
		append(seedFrame(auth, codec.TypeHWM, 0, nil), seedTag...),
		seedFrame(seedHeader, codec.TypeAck, 0, ackUs),
		seedFrame(seedHeader, codec.TypeJoin, 0, askUs),
		seedFrame(seedHeader, codec.TypeJoin, 0, welcome),
		seedFrame(seedHeader, codec.TypeChallenge, 0, codec.AppendChallenge(nil, &seedChallenge)),
		seedFrame(seedHeader, codec.TypeResponse, 0, codec.AppendChallenge(nil, &seedChallenge)),
	)
}

// TestGenerateNodeCorpus writes FuzzNodeReceive's seeds with -gen-corpus
// (the flag of TestGenerateCorpus); otherwise it checks they are committed.
func TestGenerateNodeCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzNodeReceive")
	seeds := nodeSeeds()
	if !*genCorpus {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) < len(seeds) {
			t.Errorf("%s: %d committed seeds, want >= %d (run with -gen-corpus): %v", dir, len(entries), len(seeds), err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		text := "go test fuzz v1\n" + encodeArg(s) + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNodeReceiveSequences pins inputs that break a node only in sequence
// (FuzzNodeReceive's nodes keep state across inputs, so the fuzzer finds
// them; a corpus file alone cannot replay the order). Each case runs on a
// fresh node.
func TestNodeReceiveSequences(t *testing.T) {
	hwmMax := seedHeader
	hwmMax.Seq, hwmMax.Packet = math.MaxUint64, 3
	far := seedHeader
	far.Seq, far.Packet = 1<<40, 2
	for _, tc := range []struct {
		name   string
		inputs [][]byte
	}{
		// DATA seq 2^40, HWM seq 2^64-1, the same DATA again, all from one
		// origin: the worker loops ~2^40 times in receiver.notice and never
		// takes another datagram (found by FuzzNodeReceive from seeds
		// seed-03, seed-11, seed-03; minimised).
		{"far data, hwm max, far data", [][]byte{seedData(far, "far"), seedFrame(hwmMax, codec.TypeHWM, 0, nil), seedData(far, "far")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn, err := newFuzzNode(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if !fn.stalled.Load() { // a wedged worker would block Abort forever
					fn.node.Abort()
				}
			}()
			for _, in := range tc.inputs {
				fn.inject(t, in)
			}
		})
	}
}
