package sockopt

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync/atomic"
)

// DefaultBatchSize is the number of datagrams moved per recvmmsg/sendmmsg
// when Config.BatchSize is 0.
const DefaultBatchSize = 64

// MaxBatchSize bounds Config.BatchSize (the kernel caps one recvmmsg or
// sendmmsg at UIO_MAXIOV = 1024 messages).
const MaxBatchSize = 1024

// GROBufferSize is the read buffer size that always holds a GRO-coalesced
// datagram. With GRO on, a Message.Buf shorter than this can receive a
// truncated super-datagram (counted in ConnStats.Truncated).
const GROBufferSize = 65535

// MaxGSOSegments is the most segments one GSO message may carry
// (the kernel's UDP_MAX_SEGMENTS).
const MaxGSOSegments = 64

// Message is one datagram slot of a batch. Buffers are caller-owned and are
// not retained after ReadBatch or WriteBatch returns.
type Message struct {
	// Buf is, for a read, the buffer to fill (len(Buf) is the capacity used)
	// and, for a write, the bytes to send.
	Buf []byte
	// N is, for a read, the number of bytes received into Buf. Writes ignore
	// it (len(Buf) is sent).
	N int
	// Addr is, for a read, the sender and, for a write, the destination.
	Addr netip.AddrPort
	// SegSize is, for a read, >0 when GRO coalesced several datagrams of
	// SegSize bytes (the last may be shorter) into Buf[:N]; use Segments to
	// walk them. For a write, >0 sends Buf as consecutive datagrams of
	// SegSize bytes (the last may be shorter): in one GSO message when the
	// Conn has GSO, split into separate datagrams otherwise. 0 means Buf is
	// one datagram.
	SegSize int
}

// Segments calls fn with each datagram held in m: the single datagram
// Buf[:N] when SegSize is 0, or each SegSize-byte slice of Buf[:N]
// otherwise. The slices are views into m.Buf. Segments does not allocate
// when fn does not.
func (m *Message) Segments(fn func(datagram []byte)) {
	b := m.Buf[:m.N]
	if m.SegSize <= 0 {
		fn(b)
		return
	}
	for len(b) > 0 {
		n := min(m.SegSize, len(b))
		fn(b[:n])
		b = b[n:]
	}
}

// Config says how Listen opens a socket. The zero value is a valid IPv4
// socket on an ephemeral port with the kernel's default buffers.
type Config struct {
	// BindAddr is the local address; the zero value is 0.0.0.0 (IPv4 any).
	// An IPv6 address opens an IPv6 socket; :: accepts IPv4 too.
	BindAddr netip.Addr
	// Port is the local UDP port; 0 picks an ephemeral one.
	Port int
	// ReusePort sets SO_REUSEADDR and SO_REUSEPORT so that several sockets
	// share the port (multicast listeners); without it a busy port is an error.
	ReusePort bool
	// RecvBuffer is the receive buffer size in bytes; 0 keeps the kernel
	// default. SO_RCVBUFFORCE is tried first (it needs CAP_NET_ADMIN), then
	// SO_RCVBUF. RecvBufferSize reports what the kernel granted.
	RecvBuffer int
	// SendBuffer is the send buffer size in bytes, handled as RecvBuffer.
	SendBuffer int
	// Device binds the socket to a network interface (SO_BINDTODEVICE)
	// when non-empty.
	Device string
	// BatchSize is the most messages per recvmmsg/sendmmsg; 0 means
	// DefaultBatchSize. It is always 1 on non-Linux systems.
	BatchSize int
	// MulticastInterface names the interface multicast is sent from
	// (IP_MULTICAST_IF), e.g. "lo". WriteBatch refuses multicast
	// destinations while it is empty, so multicast never leaves by the
	// default route.
	MulticastInterface string
	// MulticastLoop delivers this socket's multicast to local listeners.
	MulticastLoop bool
	// MulticastTTL is the multicast TTL (hop limit); 0 means 1.
	MulticastTTL int
	// DisableGSO turns UDP_SEGMENT off even when the kernel offers it.
	DisableGSO bool
	// DisableGRO turns UDP_GRO off even when the kernel offers it.
	DisableGRO bool
}

// Errors returned by this package; test with errors.Is.
var (
	// ErrConfig is wrapped by every error about a bad Config field; the
	// message names the field.
	ErrConfig = errors.New("sockopt: bad config")
	// ErrGSOUnsupported reports that the kernel refused UDP_SEGMENT. The
	// Conn turns GSO off when it sees this and resends without it; it is
	// returned by SetGSO(true) on a socket without GSO, and joined to a
	// WriteBatch error when the resend without GSO fails too.
	ErrGSOUnsupported = errors.New("sockopt: UDP GSO unsupported")
	// ErrMessage is wrapped by errors about a Message that cannot be sent
	// (empty address, wrong address family, oversized GSO message,
	// multicast without a MulticastInterface).
	ErrMessage = errors.New("sockopt: bad message")
	// ErrUnsupported reports an option this platform does not offer.
	ErrUnsupported = errors.New("sockopt: unsupported on this platform")
)

// MessageError is WriteBatch's error for a Message that cannot be sent (it
// wraps ErrMessage): nothing of the batch was sent, and Index says which
// message is at fault, so a caller can send the others without it.
type MessageError struct {
	Index int
	Err   error
}

func (e *MessageError) Error() string { return fmt.Sprintf("message %d: %v", e.Index, e.Err) }

// Unwrap returns the cause, which wraps ErrMessage.
func (e *MessageError) Unwrap() error { return e.Err }

// configError names the bad field.
func configError(field string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// validate checks cfg and returns it with defaults filled in.
func (cfg Config) validate() (Config, error) {
	if cfg.BindAddr.Is4In6() {
		cfg.BindAddr = cfg.BindAddr.Unmap()
	}
	if !cfg.BindAddr.IsValid() {
		cfg.BindAddr = netip.IPv4Unspecified()
	}
	if cfg.Port < 0 || cfg.Port > math.MaxUint16 {
		return cfg, configError("Port", "%d out of range 0..65535", cfg.Port)
	}
	if cfg.RecvBuffer < 0 || cfg.RecvBuffer > math.MaxInt32/2 {
		return cfg, configError("RecvBuffer", "%d out of range 0..%d", cfg.RecvBuffer, math.MaxInt32/2)
	}
	if cfg.SendBuffer < 0 || cfg.SendBuffer > math.MaxInt32/2 {
		return cfg, configError("SendBuffer", "%d out of range 0..%d", cfg.SendBuffer, math.MaxInt32/2)
	}
	if len(cfg.Device) > 15 {
		return cfg, configError("Device", "%q longer than 15 bytes (IFNAMSIZ)", cfg.Device)
	}
	if cfg.BatchSize < 0 || cfg.BatchSize > MaxBatchSize {
		return cfg, configError("BatchSize", "%d out of range 0..%d", cfg.BatchSize, MaxBatchSize)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.MulticastTTL < 0 || cfg.MulticastTTL > 255 {
		return cfg, configError("MulticastTTL", "%d out of range 0..255", cfg.MulticastTTL)
	}
	if cfg.MulticastTTL == 0 {
		cfg.MulticastTTL = 1
	}
	if len(cfg.MulticastInterface) > 15 {
		return cfg, configError("MulticastInterface", "%q longer than 15 bytes (IFNAMSIZ)", cfg.MulticastInterface)
	}
	return cfg, nil
}

// ConnStats is a snapshot of a Conn's counters.
type ConnStats struct {
	ReadCalls      uint64 // read syscalls that returned datagrams
	WriteCalls     uint64 // write syscalls that sent datagrams
	PacketsRead    uint64 // datagrams received (each GRO segment counts)
	PacketsWritten uint64 // datagrams sent (each GSO segment counts)
	BytesRead      uint64 // payload bytes received
	BytesWritten   uint64 // payload bytes sent
	GSOFallbacks   uint64 // times the kernel refused GSO and a batch was resent without it
	Truncated      uint64 // datagrams cut short because Message.Buf was too small
}

// counters are the live, atomically updated form of ConnStats.
type counters struct {
	readCalls, writeCalls       atomic.Uint64
	packetsRead, packetsWritten atomic.Uint64
	bytesRead, bytesWritten     atomic.Uint64
	gsoFallbacks, truncated     atomic.Uint64
}

func (s *counters) snapshot() ConnStats {
	return ConnStats{
		ReadCalls:      s.readCalls.Load(),
		WriteCalls:     s.writeCalls.Load(),
		PacketsRead:    s.packetsRead.Load(),
		PacketsWritten: s.packetsWritten.Load(),
		BytesRead:      s.bytesRead.Load(),
		BytesWritten:   s.bytesWritten.Load(),
		GSOFallbacks:   s.gsoFallbacks.Load(),
		Truncated:      s.truncated.Load(),
	}
}

// checkDest reports whether a message may be sent to dst from a socket of
// the given family, and returns dst in the form the socket needs.
func checkDest(dst netip.AddrPort, is6 bool, multicastIf bool) (netip.AddrPort, error) {
	a := dst.Addr()
	if !a.IsValid() || dst.Port() == 0 {
		return dst, fmt.Errorf("%w: destination %v", ErrMessage, dst)
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if !is6 && !a.Is4() {
		return dst, fmt.Errorf("%w: IPv6 destination %v on an IPv4 socket", ErrMessage, dst)
	}
	if a.IsMulticast() && !multicastIf {
		return dst, fmt.Errorf("%w: multicast destination %v without Config.MulticastInterface", ErrMessage, dst)
	}
	return netip.AddrPortFrom(a, dst.Port()), nil
}
