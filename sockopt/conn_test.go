package sockopt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// listen opens a Conn on 127.0.0.1 and closes it when the test ends.
func listen(tb testing.TB, cfg Config) *Conn {
	tb.Helper()
	if !cfg.BindAddr.IsValid() {
		cfg.BindAddr = loopback
	}
	c, err := Listen(cfg)
	if err != nil {
		tb.Fatalf("Listen(%+v): %v", cfg, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// newMessages returns n messages with buffers of size bytes each.
func newMessages(n, size int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

// datagram is one received datagram: its bytes and sender.
type datagram struct {
	data []byte
	from netip.AddrPort
}

// collect reads until want datagrams from sender (GRO segments counted one
// by one) have arrived or the deadline passes, and returns them in arrival
// order. Datagrams from anyone else are ignored: other packages' tests on
// this host may aim at a port they used before this test took it.
func collect(tb testing.TB, c *Conn, sender netip.AddrPort, want, bufSize int) []datagram {
	tb.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	msgs := newMessages(c.BatchSize(), bufSize)
	var got []datagram
	for len(got) < want {
		n, err := c.ReadBatch(msgs)
		if err != nil {
			tb.Fatalf("ReadBatch after %d of %d datagrams: %v", len(got), want, err)
		}
		for i := range msgs[:n] {
			if msgs[i].Addr != sender {
				continue
			}
			msgs[i].Segments(func(d []byte) {
				got = append(got, datagram{append([]byte(nil), d...), msgs[i].Addr})
			})
		}
	}
	return got
}

// payload returns a datagram of size bytes that starts with i.
func payload(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	if size >= 4 {
		binary.BigEndian.PutUint32(b, uint32(i))
	}
	return b
}

func TestBatchOf64(t *testing.T) {
	rx := listen(t, Config{})
	tx := listen(t, Config{})
	msgs := make([]Message, 64)
	for i := range msgs {
		msgs[i] = Message{Buf: payload(i, 8+i), Addr: rx.LocalAddr()}
	}
	n, err := tx.WriteBatch(msgs)
	if err != nil || n != len(msgs) {
		t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, len(msgs))
	}
	got := collect(t, rx, tx.LocalAddr(), len(msgs), 2048)
	if len(got) != len(msgs) {
		t.Fatalf("received %d datagrams, want %d", len(got), len(msgs))
	}
	seen := make(map[uint32]bool)
	for _, d := range got {
		if d.from != tx.LocalAddr() {
			t.Errorf("sender %v, want %v", d.from, tx.LocalAddr())
		}
		i := binary.BigEndian.Uint32(d.data)
		if i >= uint32(len(msgs)) || seen[i] || !bytes.Equal(d.data, payload(int(i), 8+int(i))) {
			t.Fatalf("unexpected or duplicate datagram %d (%d bytes)", i, len(d.data))
		}
		seen[i] = true
	}
	st := tx.Stats()
	if st.PacketsWritten != 64 || st.BytesWritten != 64*8+63*64/2 {
		t.Errorf("sender stats %+v: want 64 packets, %d bytes", st, 64*8+63*64/2)
	}
	if want := uint64(64 / tx.BatchSize()); st.WriteCalls != want {
		t.Errorf("sender made %d write syscalls, want %d", st.WriteCalls, want)
	}
	if rs := rx.Stats(); rs.PacketsRead != 64 || rs.ReadCalls == 0 || rs.ReadCalls > 64 {
		t.Errorf("receiver stats %+v: want 64 packets in 1..64 calls", rs)
	}
}

func TestSegmentsWithoutGSO(t *testing.T) {
	// A message with SegSize>0 arrives as separate datagrams whatever the
	// platform does with it.
	rx := listen(t, Config{DisableGRO: true})
	tx := listen(t, Config{DisableGSO: true})
	if tx.GSO() {
		t.Fatal("GSO() true with DisableGSO")
	}
	buf := make([]byte, 0, 2500)
	for i := range 5 {
		buf = append(buf, payload(i, 500)...)
	}
	if _, err := tx.WriteBatch([]Message{{Buf: buf, Addr: rx.LocalAddr(), SegSize: 500}}); err != nil {
		t.Fatal(err)
	}
	got := collect(t, rx, tx.LocalAddr(), 5, 2048)
	for i, d := range got {
		if !bytes.Equal(d.data, payload(i, 500)) {
			t.Fatalf("segment %d: got %d bytes starting %x", i, len(d.data), d.data[:4])
		}
	}
}

func TestMessageSegments(t *testing.T) {
	m := Message{Buf: []byte("aaabbbcc--"), N: 8, SegSize: 3}
	var parts []string
	m.Segments(func(d []byte) { parts = append(parts, string(d)) })
	if strings.Join(parts, ",") != "aaa,bbb,cc" {
		t.Errorf("Segments = %q", parts)
	}
	m.SegSize = 0
	parts = parts[:0]
	m.Segments(func(d []byte) { parts = append(parts, string(d)) })
	if strings.Join(parts, ",") != "aaabbbcc" {
		t.Errorf("Segments without SegSize = %q", parts)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	c, err := Listen(Config{BindAddr: loopback})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(newMessages(4, 64))
		done <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch still blocked 10s after Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = c.WriteBatch([]Message{{Buf: []byte("x"), Addr: netip.AddrPortFrom(loopback, 9)}})
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteBatch after Close: %v, want net.ErrClosed", err)
	}
}

func TestReadDeadline(t *testing.T) {
	c := listen(t, Config{})
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.ReadBatch(newMessages(1, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadBatch past deadline: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		cfg   Config
		field string
	}{
		{Config{Port: -1}, "Port"},
		{Config{Port: 65536}, "Port"},
		{Config{BatchSize: -1}, "BatchSize"},
		{Config{BatchSize: MaxBatchSize + 1}, "BatchSize"},
		{Config{RecvBuffer: -1}, "RecvBuffer"},
		{Config{SendBuffer: -5}, "SendBuffer"},
		{Config{MulticastTTL: 256}, "MulticastTTL"},
		{Config{Device: "a-name-longer-than-ifnamsiz"}, "Device"},
		{Config{MulticastInterface: "nosuchif0"}, "MulticastInterface"},
	}
	for _, tt := range tests {
		c, err := Listen(tt.cfg)
		if err == nil {
			_ = c.Close()
			t.Errorf("Listen(%+v) succeeded", tt.cfg)
			continue
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("Listen(%+v) = %v; want ErrConfig naming %s", tt.cfg, err, tt.field)
		}
	}
}

func TestBadMessage(t *testing.T) {
	c := listen(t, Config{})
	for _, dst := range []netip.AddrPort{
		{},
		netip.AddrPortFrom(loopback, 0),
		netip.MustParseAddrPort("[::1]:9"),
		netip.MustParseAddrPort("239.255.77.77:9"), // no MulticastInterface
	} {
		n, err := c.WriteBatch([]Message{{Buf: []byte("x"), Addr: netip.AddrPortFrom(loopback, 9)}, {Buf: []byte("x"), Addr: dst}})
		if n != 0 || !errors.Is(err, ErrMessage) || !strings.Contains(err.Error(), "message 1") {
			t.Errorf("WriteBatch to %v = %d, %v; want 0 and ErrMessage naming message 1", dst, n, err)
		}
	}
	if err := c.SetRandomDrop(1.5); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "fraction") {
		t.Errorf("SetRandomDrop(1.5) = %v", err)
	}
	if err := c.JoinGroup(loopback, "lo"); !errors.Is(err, ErrConfig) {
		t.Errorf("JoinGroup(unicast) = %v", err)
	}
}

func TestOversizedDatagram(t *testing.T) {
	rx := listen(t, Config{})
	tx := listen(t, Config{})
	msgs := []Message{
		{Buf: []byte("fits"), Addr: rx.LocalAddr()},
		{Buf: make([]byte, 70000), Addr: rx.LocalAddr()}, // above the UDP maximum
		{Buf: []byte("never sent"), Addr: rx.LocalAddr()},
	}
	n, err := tx.WriteBatch(msgs)
	if n != 1 || err == nil {
		t.Fatalf("WriteBatch = %d, %v; want 1 and EMSGSIZE", n, err)
	}
	if got := collect(t, rx, tx.LocalAddr(), 1, 2048); string(got[0].data) != "fits" {
		t.Errorf("received %q", got[0].data)
	}
}

func TestConcurrentWriters(t *testing.T) {
	const writers, batches, perBatch = 4, 10, 16
	rx := listen(t, Config{RecvBuffer: 4 << 20, DisableGRO: true})
	tx := listen(t, Config{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			msgs := make([]Message, perBatch)
			for b := range batches {
				for i := range msgs {
					id := (w*batches+b)*perBatch + i
					msgs[i] = Message{Buf: payload(id, 16+id%200), Addr: rx.LocalAddr()}
				}
				if n, err := tx.WriteBatch(msgs); err != nil || n != perBatch {
					errs <- fmt.Errorf("writer %d: WriteBatch = %d, %v", w, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = writers * batches * perBatch
	seen := make([]bool, total)
	for _, d := range collect(t, rx, tx.LocalAddr(), total, 2048) {
		id := int(binary.BigEndian.Uint32(d.data))
		if id >= total || seen[id] || !bytes.Equal(d.data, payload(id, 16+id%200)) {
			t.Fatalf("datagram %d duplicated or corrupted (%d bytes)", id, len(d.data))
		}
		seen[id] = true
	}
	if st := tx.Stats(); st.PacketsWritten != total {
		t.Errorf("PacketsWritten = %d, want %d", st.PacketsWritten, total)
	}
}
