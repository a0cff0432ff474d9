package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// Defaults for Options fields left at their zero value.
const (
	DefaultPort = 7946
	// AnyPort as Options.Port binds a free port chosen by the kernel.
	AnyPort            = -1
	DefaultGroup       = "239.0.0.1"
	DefaultHeartbeat   = 5 * time.Second
	DefaultCluster     = "default"
	DefaultFanout      = 3
	DefaultDirectLimit = 32
	// DefaultChallengeRate is Options.ChallengeRate's default.
	DefaultChallengeRate = 1000
	DefaultPublishRing   = 1 << 20 // bytes
	DefaultBatchSize     = 64
	DefaultSocketBuffer  = 4 << 20 // bytes
	DefaultMaxFrameSize  = codec.DefaultMaxFrameSize
	// DefaultHopLimit lets the relay tree reach Fanout^(HopLimit-1)
	// members: 2187 with the default Fanout.
	DefaultHopLimit = 8
)

// DefaultGroup6 is the multicast group of a node whose advertised address
// is IPv6 and whose Group is empty: link-local scope (ff12::), so it never
// leaves the link.
const DefaultGroup6 = "ff12::7946"

// Options configure a Node. The zero value of every field selects a safe
// default; New validates every field and names the offending one in its
// error.
type Options struct {
	// Port is the UDP port the node listens on for unicast. Default 7946;
	// AnyPort binds a free port chosen by the kernel (Node.Addr reports it).
	Port int
	// Group is the multicast group used for discovery and, in small
	// meshes where every member hears it, for data: an IPv4 group
	// (239.0.0.0/8 is organisation-local) or an IPv6 group of link-local
	// (ff12::…), site-local (ff15::…) or wider scope, joined on Interface.
	// Default "239.0.0.1", or DefaultGroup6 when the advertised address is
	// IPv6. An empty Group with Peers set means unicast only.
	Group string
	// GroupPort is the UDP port of the multicast group. Default: Port.
	// Nodes sharing one host need distinct Ports but a common GroupPort.
	GroupPort int
	// Interface names the network interface multicast is sent and joined
	// on ("lo" for a single-host mesh). Default: the interface holding the
	// advertised address.
	Interface string
	// Peers are the seeds, one reachable seed being enough to learn the
	// whole mesh: "ip:port" ("[v6]:port") literals; "name:port", standing
	// for every A and AAAA record of name (a Kubernetes headless Service, a
	// Swarm tasks.<service> name); or "dnssrv+_service._proto.name" (also
	// written "_service._proto.name"), standing for every SRV target with
	// its port. Names are re-resolved every Heartbeat off the failure
	// detector, each lookup bounded, keeping a name's last good answer when
	// a lookup fails; each round contacts a few of a name's addresses, not
	// all of them. The node's own address is never a seed.
	Peers []string
	// Resolver looks seed names up. Default: net.DefaultResolver. Tests and
	// custom DNS set one with PreferGo and a Dial function.
	Resolver *net.Resolver
	// AdvertiseAddr is the address other members reach this node at, "ip"
	// or "ip:port" ("[v6]:port"). Default: the Transport's address when one
	// is set; the bind address if specific; 127.0.0.1 (::1) when every
	// literal seed is a loopback address; otherwise the first global
	// address of the multicast interface (or of any up interface), with
	// Port, of the family peers use: IPv4 unless the node is bound to ::
	// and its literal seeds or Group are IPv6, or the host has no IPv4.
	AdvertiseAddr string
	// Heartbeat is the membership keep-alive interval. Default 5s.
	Heartbeat time.Duration

	// BindAddr is the local IP to bind; "::" is dual stack (IPv4 and
	// IPv6). Default "0.0.0.0", or "::" when AdvertiseAddr, Group or a
	// literal seed is IPv6, or the host has no IPv4 address to advertise.
	BindAddr string
	// Cluster names the mesh; meshes with different names sharing a
	// network or multicast group ignore each other. Default "default".
	Cluster string
	// NodeID identifies this node; 0 picks a random id. A node restarted
	// with the same id rejoins with a higher boot epoch and replaces its
	// old self; a different id at the same address also replaces it.
	NodeID uint64
	// UnicastOnly disables multicast entirely, even with Group set.
	UnicastOnly bool
	// MaxFrameSize is the largest datagram the node sends. Default 1400,
	// range codec.MinFrameSize..codec.MaxFrameSize.
	MaxFrameSize int
	// Fanout is how many random members a frame goes to (and is relayed
	// to) in meshes larger than DirectLimit. Default 3.
	Fanout int
	// DirectLimit is the largest mesh in which the origin sends every
	// frame directly to every member. Default 32.
	DirectLimit int
	// HopLimit bounds relaying in large meshes. Default 8.
	HopLimit int
	// SuspectAfter is the silence after which a member becomes suspect.
	// Default 3 × Heartbeat.
	SuspectAfter time.Duration
	// DeadAfter is the silence after which a member is declared dead.
	// Default 2 × SuspectAfter (6 × Heartbeat when SuspectAfter is left
	// at its default); must exceed SuspectAfter.
	DeadAfter time.Duration
	// ChallengeRate bounds the address-validation challenges per second a
	// node sends to addresses it learnt from others (gossip, push-pull),
	// with a burst of half a second's worth; challenges answering a
	// packet's own source are not counted. It bounds what forged digests
	// can make a node send, and paces the validation of a whole mesh when
	// a node joins. Default 1000, at most 100000.
	ChallengeRate int
	// PublishRing is the size in bytes of the publish ring (power of two).
	// Default 1 MiB.
	PublishRing int
	// BatchSize is the number of datagrams per recvmmsg/sendmmsg. Default 64.
	BatchSize int
	// RecvBuffer and SendBuffer are socket buffer sizes in bytes.
	// Default 4 MiB each; the kernel may grant less (see Stats).
	RecvBuffer, SendBuffer int
	// DisableGSO turns off UDP GSO for data. By default, where the kernel
	// has UDP_SEGMENT, each flush's run of frames to a destination leaves
	// as one GSO message (frames padded to MaxFrameSize), which cuts the
	// sender's per-datagram kernel cost 2-4x; flow control (FlowWindow)
	// keeps the faster sender from overflowing its receivers.
	DisableGSO bool
	// EchoLocal delivers this node's own invalidations to its handlers too.
	EchoLocal bool
	// Logger receives the node's logs. Default: slog.Default().
	Logger *slog.Logger

	// Keyring, when set, authenticates and encrypts every frame (see
	// Keyring). Without one, frames are plaintext and anyone who can reach
	// the port can speak.
	Keyring *Keyring
	// Auth chooses how a node with a Keyring treats plaintext frames, for
	// rolling authentication into a running cluster. Default AuthRequired.
	Auth AuthMode
	// RetransmitBuffer is the memory, in bytes, for recent frames kept to
	// answer NACKs. Default 4 MiB (about 3000 full frames).
	RetransmitBuffer int
	// RetransmitRate bounds retransmitted frames per second. Default 100000.
	RetransmitRate int
	// FlowWindow is how many frames an origin may have in flight beyond
	// its slowest receiver's last acknowledgement (in a relay tree, its
	// tree children's, each for its subtree, plus 16 frames per tree
	// level) before it waits; a wait lasts at most 20 ms, then the
	// frames leave anyway (counted in Stats.FlowTimeouts). Default: half the frames
	// RecvBuffer holds, at least 64; negative turns flow control off.
	// A window below about 80 frames makes most waits end by timeout
	// rather than by an ACK: a flush carries up to 64 frames and
	// receivers acknowledge every 16.
	FlowWindow int
	// RepairTimeout is how long a gap may stay open before it is given up
	// with a Gap event. Default 5s. A dead origin's gaps are given up once
	// nothing at all has been heard from it for RepairTimeout (a member that
	// only looked dead, behind a one-way partition, is NACKed first); a
	// departed one's at once.
	RepairTimeout time.Duration

	// OnInvalidate and OnEvent, when set, are registered before the node
	// starts receiving, so nothing that arrives during New is missed
	// (handlers registered later with Node.OnInvalidate / Node.OnEvent see
	// only what arrives after).
	OnInvalidate Handler
	OnEvent      func(Event)

	// Transport, when set, replaces the UDP sockets (tests, simulation).
	// The node closes it on Close. Multicast is then off.
	Transport Transport
}

// AuthMode says how a node with a Keyring treats unauthenticated frames.
// Rolling authentication into a running cluster without losing anything
// takes three restarts of every node: AuthSendPlaintext (can open sealed
// frames, still sends plaintext), then AuthAcceptPlaintext (seals, still
// accepts plaintext from nodes not yet moved), then AuthRequired.
type AuthMode uint8

// Auth modes.
const (
	AuthRequired        AuthMode = iota // seal everything; drop plaintext frames
	AuthAcceptPlaintext                 // seal everything; accept plaintext too
	AuthSendPlaintext                   // send plaintext; accept both
)

// ErrInvalidOption is wrapped by every option validation error.
var ErrInvalidOption = errors.New("engine: invalid option")

// OptionError names the option that failed validation.
type OptionError struct {
	Option string
	Value  any
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("engine: invalid option %s=%v: %s", e.Option, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidOption) hold.
func (e *OptionError) Unwrap() error { return ErrInvalidOption }

func optErr(option string, value any, reason string) error {
	return &OptionError{Option: option, Value: value, Reason: reason}
}

// config is Options resolved and validated.
type config struct {
	Options
	bind      netip.Addr
	group     netip.Addr // invalid = no multicast
	groupPort int
	advertise netip.AddrPort
	seeds     []string
	seedSpecs []seedSpec
	bindSet   bool // BindAddr was given (the default may turn dual stack)
	cluster   uint64
}

func (o Options) resolve() (*config, error) {
	c := &config{Options: o}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port == AnyPort {
		if c.Transport == nil && !(c.UnicastOnly || (c.Group == "" && len(c.Peers) > 0)) && c.GroupPort == 0 {
			return nil, optErr("GroupPort", o.GroupPort, "must be set when Port is AnyPort and multicast is on")
		}
	} else if c.Port < 0 || c.Port > 65535 {
		return nil, optErr("Port", o.Port, "must be 1..65535")
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Heartbeat < 5*time.Millisecond {
		return nil, optErr("Heartbeat", o.Heartbeat, "must be at least 5ms")
	}
	if c.SuspectAfter == 0 {
		c.SuspectAfter = 3 * c.Heartbeat
	}
	if c.SuspectAfter < c.Heartbeat {
		return nil, optErr("SuspectAfter", o.SuspectAfter, "must be at least Heartbeat")
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = 2 * c.SuspectAfter
	}
	if c.DeadAfter <= c.SuspectAfter {
		return nil, optErr("DeadAfter", o.DeadAfter, "must exceed SuspectAfter")
	}
	if c.ChallengeRate == 0 {
		c.ChallengeRate = DefaultChallengeRate
	}
	if c.ChallengeRate < 1 || c.ChallengeRate > 100000 {
		return nil, optErr("ChallengeRate", o.ChallengeRate, "must be 1..100000")
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if len(c.Cluster) > 255 {
		return nil, optErr("Cluster", o.Cluster, "longer than 255 bytes")
	}
	c.cluster = codec.ClusterHash(c.Cluster)
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxFrameSize < codec.MinFrameSize || c.MaxFrameSize > codec.MaxFrameSize {
		return nil, optErr("MaxFrameSize", o.MaxFrameSize,
			fmt.Sprintf("must be %d..%d", codec.MinFrameSize, codec.MaxFrameSize))
	}
	if c.Fanout == 0 {
		c.Fanout = DefaultFanout
	}
	if c.Fanout < 1 || c.Fanout > 64 {
		return nil, optErr("Fanout", o.Fanout, "must be 1..64")
	}
	if c.DirectLimit == 0 {
		c.DirectLimit = DefaultDirectLimit
	}
	if c.DirectLimit < 1 || c.DirectLimit > 4096 {
		return nil, optErr("DirectLimit", o.DirectLimit, "must be 1..4096")
	}
	if c.HopLimit == 0 {
		c.HopLimit = DefaultHopLimit
	}
	if c.HopLimit < 1 || c.HopLimit > 255 {
		return nil, optErr("HopLimit", o.HopLimit, "must be 1..255")
	}
	if c.PublishRing == 0 {
		c.PublishRing = DefaultPublishRing
	}
	if c.PublishRing < 4096 || c.PublishRing&(c.PublishRing-1) != 0 {
		return nil, optErr("PublishRing", o.PublishRing, "must be a power of two >= 4096")
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 1 || c.BatchSize > 1024 {
		return nil, optErr("BatchSize", o.BatchSize, "must be 1..1024")
	}
	if c.RecvBuffer == 0 {
		c.RecvBuffer = DefaultSocketBuffer
	}
	if c.RecvBuffer < 0 {
		return nil, optErr("RecvBuffer", o.RecvBuffer, "must not be negative")
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSocketBuffer
	}
	if c.SendBuffer < 0 {
		return nil, optErr("SendBuffer", o.SendBuffer, "must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Auth > AuthSendPlaintext {
		return nil, optErr("Auth", o.Auth, "unknown mode")
	}
	if c.Auth != AuthRequired && c.Keyring == nil {
		return nil, optErr("Auth", o.Auth, "needs a Keyring")
	}
	if c.RetransmitBuffer == 0 {
		c.RetransmitBuffer = 4 << 20
	}
	if c.RetransmitBuffer < c.MaxFrameSize || c.RetransmitBuffer > 1<<30 {
		return nil, optErr("RetransmitBuffer", o.RetransmitBuffer, "must be MaxFrameSize..1GiB")
	}
	if c.RetransmitRate == 0 {
		c.RetransmitRate = 100000
	}
	if c.RetransmitRate < 1 {
		return nil, optErr("RetransmitRate", o.RetransmitRate, "must be positive")
	}
	if c.FlowWindow == 0 {
		c.FlowWindow = max(64, c.RecvBuffer/c.MaxFrameSize/2)
	}
	if c.RepairTimeout == 0 {
		c.RepairTimeout = 5 * time.Second
	}
	if c.RepairTimeout < 10*time.Millisecond {
		return nil, optErr("RepairTimeout", o.RepairTimeout, "must be at least 10ms")
	}

	for _, p := range c.Peers {
		spec, err := parseSeed(p)
		if err != nil {
			return nil, optErr("Peers", p, err.Error())
		}
		c.seeds = append(c.seeds, p)
		c.seedSpecs = append(c.seedSpecs, spec)
	}

	multicast := !c.UnicastOnly && c.Transport == nil && !(c.Group == "" && len(c.Peers) > 0)
	var group netip.Addr
	if multicast && c.Group != "" {
		a, err := netip.ParseAddr(c.Group)
		if err != nil || !a.IsMulticast() {
			return nil, optErr("Group", o.Group, "must be an IPv4 or IPv6 multicast address")
		}
		if a.Is6() && !a.Is4In6() && a.As16()[1]&0x0f < 2 {
			return nil, optErr("Group", o.Group, "an IPv6 group needs link-local (ff12::) or wider scope")
		}
		group = a.Unmap()
	}

	c.bind = netip.IPv4Unspecified()
	if c.BindAddr != "" {
		a, err := netip.ParseAddr(c.BindAddr)
		if err != nil {
			return nil, optErr("BindAddr", o.BindAddr, "not an IP address")
		}
		c.bind, c.bindSet = a.Unmap(), true
	} else if c.wantsIPv6(group) {
		c.bind = netip.IPv6Unspecified()
	}

	if multicast {
		// The advertised address decides the default group's family, so
		// it is chosen first (below, with the interface).
		c.group = group
		if group.IsValid() && group.Is6() && c.bind.Is4() {
			return nil, optErr("Group", o.Group, "an IPv6 group needs an IPv6 or dual-stack (::) BindAddr")
		}
		if group.IsValid() && group.Is4() && c.bind.Is6() && !c.bind.IsUnspecified() {
			return nil, optErr("Group", o.Group, "an IPv4 group needs an IPv4 or dual-stack (::) BindAddr")
		}
		c.groupPort = c.GroupPort
		if c.groupPort == 0 {
			c.groupPort = c.Port
		}
		if c.groupPort < 1 || c.groupPort > 65535 {
			return nil, optErr("GroupPort", o.GroupPort, "must be 1..65535")
		}
		if c.bind.IsValid() && !c.bind.IsUnspecified() && c.groupPort == c.Port {
			return nil, optErr("BindAddr", o.BindAddr,
				"a specific bind address cannot receive multicast on the same port; set GroupPort, leave BindAddr empty, or set UnicastOnly")
		}
	} else if c.GroupPort != 0 && (c.GroupPort < 1 || c.GroupPort > 65535) {
		return nil, optErr("GroupPort", o.GroupPort, "must be 1..65535")
	}

	if c.Interface != "" {
		if _, err := net.InterfaceByName(c.Interface); err != nil {
			return nil, optErr("Interface", o.Interface, "no such interface")
		}
	}

	adv, err := c.resolveAdvertise()
	if err != nil {
		return nil, err
	}
	c.advertise = adv
	if multicast && !c.group.IsValid() {
		c.group = netip.MustParseAddr(DefaultGroup)
		if adv.Addr().Is6() && c.bind.Is6() {
			c.group = netip.MustParseAddr(DefaultGroup6)
		}
	}
	if c.group.IsValid() && c.Interface == "" {
		ifname, err := interfaceFor(adv.Addr())
		if err != nil {
			return nil, optErr("Interface", o.Interface, "cannot auto-detect: "+err.Error()+"; set Interface")
		}
		c.Interface = ifname
	}
	return c, nil
}

func (c *config) resolveAdvertise() (netip.AddrPort, error) {
	if c.AdvertiseAddr != "" {
		if ap, err := netip.ParseAddrPort(c.AdvertiseAddr); err == nil {
			if ap.Addr().IsUnspecified() || (ap.Port() == 0 && c.Port != AnyPort) {
				return netip.AddrPort{}, optErr("AdvertiseAddr", c.AdvertiseAddr, "must be a specific address and port")
			}
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
		}
		a, err := netip.ParseAddr(c.AdvertiseAddr)
		if err != nil || a.IsUnspecified() {
			return netip.AddrPort{}, optErr("AdvertiseAddr", c.AdvertiseAddr, "must be ip or ip:port")
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(max(c.Port, 0))), nil
	}
	if c.Transport != nil {
		return c.Transport.LocalAddr(), nil // its own addresses, whatever they are
	}
	if !c.bind.IsUnspecified() {
		return netip.AddrPortFrom(c.bind, uint16(max(c.Port, 0))), nil
	}
	port := uint16(max(c.Port, 0))
	if lo, ok := c.seedsLoopback(); ok {
		// Seeds on this host only: a node that talks to them must be
		// reachable the same way, not at a LAN address.
		if lo.Is6() && c.bind.Is6() {
			return netip.AddrPortFrom(netip.IPv6Loopback(), port), nil
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port), nil
	}
	// Bound to ::, the node can be reached on either family: advertise the
	// one its peers use (its literal seeds', or its group's), and fall
	// back to the other family when the host has none of the first.
	want6 := c.bind.Is6() && c.prefersIPv6()
	a, err := localAddr(c.Interface, want6)
	if err != nil && (c.bind.Is6() || !c.bindSet) {
		var e6 error
		if a, e6 = localAddr(c.Interface, !want6); e6 == nil {
			err = nil
			if a.Is6() {
				c.bind = netip.IPv6Unspecified() // no IPv4 here: serve both families
			}
		}
	}
	if err != nil {
		return netip.AddrPort{}, optErr("AdvertiseAddr", c.AdvertiseAddr, "cannot auto-detect: "+err.Error())
	}
	return netip.AddrPortFrom(a, port), nil
}

// wantsIPv6 reports whether an unset BindAddr should be :: rather than
// 0.0.0.0: the advertised address, the group or a literal seed is IPv6.
func (c *config) wantsIPv6(group netip.Addr) bool {
	if ap, err := netip.ParseAddrPort(c.AdvertiseAddr); err == nil && ap.Addr().Unmap().Is6() {
		return true
	}
	if a, err := netip.ParseAddr(c.AdvertiseAddr); err == nil && a.Unmap().Is6() {
		return true
	}
	if group.IsValid() && group.Is6() {
		return true
	}
	for _, s := range c.seedSpecs {
		if s.kind == seedLiteral && s.literal.Addr().Is6() {
			return true
		}
	}
	return false
}

// prefersIPv6 reports whether a dual-stack node should advertise IPv6: its
// first literal seed is IPv6 or, without literal seeds, its group is.
func (c *config) prefersIPv6() bool {
	for _, s := range c.seedSpecs {
		if s.kind == seedLiteral {
			return s.literal.Addr().Is6()
		}
	}
	if c.group.IsValid() {
		return c.group.Is6()
	}
	return false
}

// seedsLoopback reports whether there are seeds, all literal loopback
// addresses, and returns the first.
func (c *config) seedsLoopback() (netip.Addr, bool) {
	if len(c.seedSpecs) == 0 {
		return netip.Addr{}, false
	}
	for _, s := range c.seedSpecs {
		if s.kind != seedLiteral || !s.literal.Addr().IsLoopback() {
			return netip.Addr{}, false
		}
	}
	return c.seedSpecs[0].literal.Addr(), true
}

// localAddr returns the first address of the wanted family (IPv6 when
// want6) of ifname, or, with ifname empty, the first global unicast address
// of that family of any up, non-loopback interface. IPv6 link-local
// addresses are skipped: they need a zone, which the wire format does not
// carry.
func localAddr(ifname string, want6 bool) (netip.Addr, error) {
	var ifs []net.Interface
	if ifname != "" {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return netip.Addr{}, err
		}
		ifs = []net.Interface{*ifi}
	} else {
		all, err := net.Interfaces()
		if err != nil {
			return netip.Addr{}, err
		}
		ifs = all
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || (ifname == "" && ifi.Flags&net.FlagLoopback != 0) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr().Unmap()
			if ip.Is6() != want6 || ip.IsLinkLocalUnicast() {
				continue
			}
			if ifname != "" || ip.IsGlobalUnicast() {
				return ip, nil
			}
		}
	}
	if want6 {
		return netip.Addr{}, errors.New("no usable IPv6 address found")
	}
	return netip.Addr{}, errors.New("no usable IPv4 address found")
}

// interfaceFor names the interface that holds addr.
func interfaceFor(addr netip.Addr) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err == nil && pfx.Addr().Unmap() == addr {
				return ifi.Name, nil
			}
		}
	}
	if addr.IsLoopback() {
		return "lo", nil
	}
	return "", fmt.Errorf("no interface holds %v", addr)
}
