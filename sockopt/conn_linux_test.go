package sockopt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBatchAllocs(t *testing.T) {
	rx := listen(t, Config{RecvBuffer: 4 << 20, DisableGRO: true})
	tx := listen(t, Config{})
	const runs = 20
	out := make([]Message, 64)
	for i := range out {
		out[i] = Message{Buf: payload(i, 64), Addr: rx.LocalAddr()}
	}
	in := newMessages(64, 2048)
	if err := rx.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}

	// Queue enough for every ReadBatch AllocsPerRun makes (runs + a warm-up),
	// each of which returns at least one datagram.
	var werr error
	writes := testing.AllocsPerRun(runs, func() {
		if _, err := tx.WriteBatch(out); err != nil {
			werr = err
		}
	})
	if werr != nil {
		t.Fatal(werr)
	}
	if writes != 0 {
		t.Errorf("WriteBatch of 64: %v allocs, want 0", writes)
	}
	var rerr error
	got := 0
	reads := testing.AllocsPerRun(runs, func() {
		n, err := rx.ReadBatch(in)
		if err != nil {
			rerr = err
		}
		got += n
	})
	if rerr != nil {
		t.Fatal(rerr)
	}
	if reads != 0 {
		t.Errorf("ReadBatch of up to 64: %v allocs, want 0", reads)
	}
	if got < runs+1 || in[0].Addr != tx.LocalAddr() {
		t.Errorf("read %d datagrams, first from %v; want >%d from %v", got, in[0].Addr, runs, tx.LocalAddr())
	}
}

// gsoBatch returns messages carrying 4 super-buffers of 23 datagrams of
// seg bytes (the last 7 bytes shorter) plus one plain datagram, and the
// datagrams they must arrive as, in order.
func gsoBatch(dst netip.AddrPort, seg int) ([]Message, [][]byte) {
	var msgs []Message
	var want [][]byte
	k := 0
	for range 4 {
		var buf []byte
		for j := range 23 {
			size := seg
			if j == 22 {
				size = seg - 7
			}
			d := payload(k, size)
			k++
			want = append(want, d)
			buf = append(buf, d...)
		}
		msgs = append(msgs, Message{Buf: buf, Addr: dst, SegSize: seg})
	}
	d := payload(k, 100)
	want = append(want, d)
	msgs = append(msgs, Message{Buf: d, Addr: dst})
	return msgs, want
}

func TestGSOAndGRODeliverSameBytes(t *testing.T) {
	probe := listen(t, Config{})
	if !probe.GSO() || !probe.GRO() {
		t.Skipf("kernel without UDP GSO/GRO (GSO %v, GRO %v)", probe.GSO(), probe.GRO())
	}
	for _, seg := range []int{1000, 1400} {
		for _, gso := range []bool{true, false} {
			for _, gro := range []bool{true, false} {
				t.Run(fmt.Sprintf("seg=%d/gso=%v/gro=%v", seg, gso, gro), func(t *testing.T) {
					rx := listen(t, Config{DisableGRO: !gro, RecvBuffer: 1 << 20})
					tx := listen(t, Config{DisableGSO: !gso})
					msgs, want := gsoBatch(rx.LocalAddr(), seg)
					if n, err := tx.WriteBatch(msgs); err != nil || n != len(msgs) {
						t.Fatalf("WriteBatch = %d, %v", n, err)
					}
					got := collect(t, rx, tx.LocalAddr(), len(want), GROBufferSize)
					if len(got) != len(want) {
						t.Fatalf("got %d datagrams, want %d", len(got), len(want))
					}
					for i := range want {
						if !bytes.Equal(got[i].data, want[i]) || got[i].from != tx.LocalAddr() {
							t.Fatalf("datagram %d: %d bytes from %v, want %d bytes from %v",
								i, len(got[i].data), got[i].from, len(want[i]), tx.LocalAddr())
						}
					}
					ts, rs := tx.Stats(), rx.Stats()
					if ts.PacketsWritten != uint64(len(want)) || rs.PacketsRead != uint64(len(want)) {
						t.Errorf("packets written %d, read %d; want %d", ts.PacketsWritten, rs.PacketsRead, len(want))
					}
					if gso && ts.WriteCalls != 1 {
						t.Errorf("GSO send took %d syscalls, want 1", ts.WriteCalls)
					}
					if gso && gro && rs.ReadCalls != 1 {
						// On lo a GSO message stays whole, so GRO hands it over whole.
						t.Errorf("GRO receive took %d syscalls, want 1", rs.ReadCalls)
					}
				})
			}
		}
	}
}

func TestGSOSplitsOverlongMessages(t *testing.T) {
	// 150 segments exceed one GSO message (MaxGSOSegments): WriteBatch sends
	// them as several GSO messages.
	rx := listen(t, Config{DisableGRO: true, RecvBuffer: 1 << 20})
	tx := listen(t, Config{})
	if !tx.GSO() {
		t.Skip("kernel without UDP GSO")
	}
	var buf []byte
	for i := range 150 {
		buf = append(buf, payload(i, 100)...)
	}
	if n, err := tx.WriteBatch([]Message{{Buf: buf, Addr: rx.LocalAddr(), SegSize: 100}}); err != nil || n != 1 {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	got := collect(t, rx, tx.LocalAddr(), 150, 2048)
	for i, d := range got {
		if !bytes.Equal(d.data, payload(i, 100)) {
			t.Fatalf("datagram %d wrong (%d bytes, starts %x)", i, len(d.data), d.data[:4])
		}
	}
}

func TestGSOFallback(t *testing.T) {
	rx := listen(t, Config{DisableGRO: true, RecvBuffer: 1 << 20})
	tx := listen(t, Config{})
	if !tx.GSO() {
		t.Skip("kernel without UDP GSO")
	}
	tx.wmu.Lock()
	tx.refuseGSOForTest = 1 // the next GSO send fails with EIO
	tx.wmu.Unlock()
	msgs, want := gsoBatch(rx.LocalAddr(), 1200)
	if n, err := tx.WriteBatch(msgs); err != nil || n != len(msgs) {
		t.Fatalf("WriteBatch = %d, %v; want %d, nil after falling back", n, err, len(msgs))
	}
	if tx.GSO() {
		t.Error("GSO() still true after the kernel refused it")
	}
	if st := tx.Stats(); st.GSOFallbacks != 1 || st.WriteCalls < uint64(len(want)/tx.BatchSize()) {
		t.Errorf("stats %+v: want 1 GSO fallback", st)
	}
	got := collect(t, rx, tx.LocalAddr(), len(want), 2048)
	for i := range want {
		if !bytes.Equal(got[i].data, want[i]) {
			t.Fatalf("datagram %d differs after fallback", i)
		}
	}
	if err := tx.SetGSO(true); err != nil || !tx.GSO() {
		t.Errorf("SetGSO(true) on a GSO-capable kernel: %v", err)
	}
}

func TestMulticastOnLoopback(t *testing.T) {
	group := netip.MustParseAddr("239.255.77.77")
	rx := listen(t, Config{BindAddr: netip.IPv4Unspecified(), DisableGRO: true})
	if err := rx.JoinGroup(group, "lo"); err != nil {
		t.Fatalf("JoinGroup on lo: %v", err)
	}
	tx := listen(t, Config{MulticastInterface: "lo", MulticastLoop: true, MulticastTTL: 1})
	dst := netip.AddrPortFrom(group, rx.LocalAddr().Port())
	msgs := []Message{{Buf: []byte("hello group 1"), Addr: dst}, {Buf: []byte("hello group 2"), Addr: dst}}
	if _, err := tx.WriteBatch(msgs); err != nil {
		t.Fatal(err)
	}
	got := collect(t, rx, tx.LocalAddr(), 2, 2048)
	for i, d := range got {
		if string(d.data) != fmt.Sprintf("hello group %d", i+1) || d.from.Port() != tx.LocalAddr().Port() {
			t.Errorf("datagram %d: %q from %v", i, d.data, d.from)
		}
	}

	// After LeaveGroup the group's datagrams stop: a unicast marker sent
	// after one more multicast datagram is the next thing read.
	if err := rx.LeaveGroup(group, "lo"); err != nil {
		t.Fatalf("LeaveGroup: %v", err)
	}
	marker := netip.AddrPortFrom(loopback, rx.LocalAddr().Port())
	if _, err := tx.WriteBatch([]Message{{Buf: []byte("after leave"), Addr: dst}, {Buf: []byte("marker"), Addr: marker}}); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, rx, tx.LocalAddr(), 1, 2048); string(got[0].data) != "marker" {
		t.Errorf("after LeaveGroup read %q, want the marker", got[0].data)
	}
}

// dropRun sends total datagrams through a receiver whose filter drops
// fraction of them, then detaches the filter and sends a marker; it returns
// how many datagrams arrived before the marker.
func dropRun(t *testing.T, fraction float64, total int) int {
	t.Helper()
	rx := listen(t, Config{RecvBuffer: 8 << 20, DisableGRO: true})
	tx := listen(t, Config{})
	if err := rx.SetRandomDrop(fraction); err != nil {
		t.Fatalf("SetRandomDrop(%v): %v", fraction, err)
	}
	msgs := make([]Message, 64)
	for sent := 0; sent < total; sent += len(msgs) {
		msgs = msgs[:min(64, total-sent)]
		for i := range msgs {
			msgs[i] = Message{Buf: payload(sent+i, 32), Addr: rx.LocalAddr()}
		}
		if _, err := tx.WriteBatch(msgs); err != nil {
			t.Fatal(err)
		}
	}
	if err := rx.SetRandomDrop(0); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if _, err := tx.WriteBatch([]Message{{Buf: []byte("marker"), Addr: rx.LocalAddr()}}); err != nil {
		t.Fatal(err)
	}
	if err := rx.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	in := newMessages(64, 2048)
	arrived := 0
	for {
		n, err := rx.ReadBatch(in)
		if err != nil {
			t.Fatalf("ReadBatch after %d datagrams: %v", arrived, err)
		}
		for _, m := range in[:n] {
			if m.Addr != tx.LocalAddr() {
				continue // another test's stray datagram
			}
			if string(m.Buf[:m.N]) == "marker" {
				return arrived
			}
			if i := binary.BigEndian.Uint32(m.Buf); i >= uint32(total) {
				t.Fatalf("unexpected datagram %d", i)
			}
			arrived++
		}
	}
}

func TestRandomDrop(t *testing.T) {
	const total = 4000
	if got := dropRun(t, 0.5, total); got < total*35/100 || got > total*65/100 {
		t.Errorf("fraction 0.5: %d of %d arrived, want 35%%..65%%", got, total)
	} else {
		t.Logf("fraction 0.5: %d of %d arrived (%.1f%% dropped)", got, total, 100*float64(total-got)/total)
	}
	if got := dropRun(t, 1, 1000); got != 0 {
		t.Errorf("fraction 1: %d of 1000 arrived, want 0", got)
	}
	if got := dropRun(t, 0, 1000); got != 1000 {
		t.Errorf("fraction 0 (detached): %d of 1000 arrived, want all", got)
	}
}

func TestBufferSizes(t *testing.T) {
	const asked = 1 << 20
	c := listen(t, Config{RecvBuffer: asked, SendBuffer: asked})
	// Linux grants double the size asked for (the doubled part is its
	// bookkeeping). SO_RCVBUFFORCE (root) ignores net.core.rmem_max;
	// plain SO_RCVBUF is capped by it, then doubled.
	for _, b := range []struct {
		name    string
		granted int
		max     string
	}{{"receive", c.RecvBufferSize(), "rmem_max"}, {"send", c.SendBufferSize(), "wmem_max"}} {
		want := 2 * asked
		if os.Geteuid() != 0 {
			want = 2 * min(asked, sysctlInt(t, "/proc/sys/net/core/"+b.max))
		}
		if b.granted < want {
			t.Errorf("%s buffer: asked %d, granted %d, want at least %d", b.name, asked, b.granted, want)
		}
	}
	small := listen(t, Config{RecvBuffer: 8192})
	if small.RecvBufferSize() >= c.RecvBufferSize() {
		t.Errorf("8 KiB buffer reported %d, not below the 1 MiB one's %d", small.RecvBufferSize(), c.RecvBufferSize())
	}
}

func sysctlInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("cannot read %s: %v", path, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func TestReusePortAndDevice(t *testing.T) {
	a := listen(t, Config{ReusePort: true, Device: "lo"})
	b, err := Listen(Config{BindAddr: loopback, Port: int(a.LocalAddr().Port()), ReusePort: true, Device: "lo"})
	if err != nil {
		t.Fatalf("second SO_REUSEPORT socket on %v: %v", a.LocalAddr(), err)
	}
	_ = b.Close()
	if _, err := Listen(Config{BindAddr: loopback, Device: "nosuchif0"}); err == nil {
		t.Error("SO_BINDTODEVICE to a missing interface succeeded")
	}
}

func TestIPv6(t *testing.T) {
	rx, err := Listen(Config{BindAddr: netip.IPv6Loopback(), DisableGRO: true})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { _ = rx.Close() })
	tx := listen(t, Config{BindAddr: netip.IPv6Loopback()})
	if _, err := tx.WriteBatch([]Message{{Buf: []byte("six"), Addr: rx.LocalAddr()}}); err != nil {
		t.Fatal(err)
	}
	got := collect(t, rx, tx.LocalAddr(), 1, 64)
	if string(got[0].data) != "six" || got[0].from != tx.LocalAddr() {
		t.Errorf("got %q from %v, want \"six\" from %v", got[0].data, got[0].from, tx.LocalAddr())
	}
}

func TestDualStack(t *testing.T) {
	rx, err := Listen(Config{BindAddr: netip.IPv6Unspecified(), DisableGRO: true})
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	t.Cleanup(func() { _ = rx.Close() })
	tx4 := listen(t, Config{})
	to4 := netip.AddrPortFrom(loopback, rx.LocalAddr().Port())
	if _, err := tx4.WriteBatch([]Message{{Buf: []byte("from four"), Addr: to4}}); err != nil {
		t.Fatal(err)
	}
	got := collect(t, rx, tx4.LocalAddr(), 1, 64)
	if string(got[0].data) != "from four" || got[0].from != tx4.LocalAddr() {
		t.Errorf("got %q from %v, want from %v (unmapped)", got[0].data, got[0].from, tx4.LocalAddr())
	}
	// And back: the IPv6 socket sends to an IPv4 address (as IPv4-mapped).
	if _, err := rx.WriteBatch([]Message{{Buf: []byte("from six"), Addr: tx4.LocalAddr()}}); err != nil {
		t.Fatal(err)
	}
	back := collect(t, tx4, netip.AddrPortFrom(loopback, rx.LocalAddr().Port()), 1, 64)
	if string(back[0].data) != "from six" || back[0].from.Port() != rx.LocalAddr().Port() {
		t.Errorf("got %q from %v", back[0].data, back[0].from)
	}
}
