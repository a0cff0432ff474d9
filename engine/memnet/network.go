package memnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Errors.
var (
	// ErrClosed is returned by an endpoint's methods after Close (or after
	// the network's Close). It wraps net.ErrClosed.
	ErrClosed = fmt.Errorf("memnet: closed: %w", net.ErrClosed)
	// ErrAddrInUse is returned by Listen for an address already open.
	ErrAddrInUse = errors.New("memnet: address already in use")
	// ErrInvalidAddr is returned by Listen for an invalid, unspecified or
	// multicast address.
	ErrInvalidAddr = errors.New("memnet: invalid address")
	// ErrTooLarge is returned by WriteBatch for a datagram longer than the
	// network's MTU, like EMSGSIZE; the datagrams before it were sent.
	ErrTooLarge = errors.New("memnet: datagram larger than MTU")
	// ErrInvalidConfig is wrapped by every Config and Link validation error.
	ErrInvalidConfig = errors.New("memnet: invalid config")
)

// Defaults for Config fields left at zero.
const (
	DefaultMTU         = 1500
	DefaultQueueLen    = 4096
	DefaultMaxInFlight = 1 << 16
	maxMTU             = 65507
	firstEphemeralPort = 49152
)

// Config tunes a Network. Zero fields select the defaults.
type Config struct {
	// MTU is the largest datagram in bytes; WriteBatch refuses longer ones
	// with ErrTooLarge. Default 1500, at most 65507.
	MTU int
	// QueueLen is how many datagrams an endpoint's receive queue holds,
	// like a socket receive buffer: arrivals beyond it are dropped and
	// counted (DropQueueFull). Queue memory grows to it only as needed.
	// Default 4096.
	QueueLen int
	// MaxInFlight bounds the delayed datagrams the scheduler holds; beyond
	// it they are dropped (DropSchedulerFull). Default 65536.
	MaxInFlight int
}

func (c Config) resolve() (Config, error) {
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < 1 || c.MTU > maxMTU {
		return c, fmt.Errorf("%w: MTU=%d must be 1..%d", ErrInvalidConfig, c.MTU, maxMTU)
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.QueueLen < 1 {
		return c, fmt.Errorf("%w: QueueLen=%d must be positive", ErrInvalidConfig, c.QueueLen)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxInFlight < 1 {
		return c, fmt.Errorf("%w: MaxInFlight=%d must be positive", ErrInvalidConfig, c.MaxInFlight)
	}
	return c, nil
}

// Link describes the faults on the path from one endpoint to another.
// The zero Link is a perfect wire: no loss, no delay, delivery in order
// during the sender's WriteBatch.
type Link struct {
	// Loss is the probability, 0..1, that a datagram is dropped.
	Loss float64
	// Duplicate is the probability, 0..1, that a datagram arrives twice.
	Duplicate float64
	// Delay is the fixed one-way delay.
	Delay time.Duration
	// Jitter adds a uniform random delay in [0, Jitter) to each datagram,
	// so datagrams on the link overtake each other.
	Jitter time.Duration
}

func (l Link) validate() error {
	switch {
	case !(l.Loss >= 0 && l.Loss <= 1):
		return fmt.Errorf("%w: Link.Loss=%v must be 0..1", ErrInvalidConfig, l.Loss)
	case !(l.Duplicate >= 0 && l.Duplicate <= 1):
		return fmt.Errorf("%w: Link.Duplicate=%v must be 0..1", ErrInvalidConfig, l.Duplicate)
	case l.Delay < 0:
		return fmt.Errorf("%w: Link.Delay=%v must not be negative", ErrInvalidConfig, l.Delay)
	case l.Jitter < 0:
		return fmt.Errorf("%w: Link.Jitter=%v must not be negative", ErrInvalidConfig, l.Jitter)
	}
	return nil
}

// linkKey names a directed link.
type linkKey struct{ from, to netip.AddrPort }

// Network is a set of endpoints and the faults between them. All methods
// are safe for concurrent use; fault settings apply to datagrams sent
// after the call returns.
type Network struct {
	seed  uint64
	cfg   Config
	sched scheduler

	mu        sync.RWMutex
	closed    bool
	endpoints map[netip.AddrPort]*Endpoint
	all       []*Endpoint // every endpoint ever opened, for Stats
	def       Link
	links     map[linkKey]Link
	blocked   map[linkKey]struct{}
	nextPort  uint16
}

// New returns an empty network with the default Config. seed drives every
// random fault decision: each endpoint draws from its own PRNG seeded by
// seed and its address, so a sender's sequence of decisions repeats from
// run to run.
func New(seed int64) *Network {
	n, err := NewWithConfig(seed, Config{})
	if err != nil {
		panic("memnet: default config invalid: " + err.Error()) // unreachable
	}
	return n
}

// NewWithConfig is New with explicit sizes; it returns an error wrapping
// ErrInvalidConfig that names a bad field.
func NewWithConfig(seed int64, cfg Config) (*Network, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	n := &Network{
		seed:      uint64(seed),
		cfg:       c,
		endpoints: make(map[netip.AddrPort]*Endpoint),
		links:     make(map[linkKey]Link),
		blocked:   make(map[linkKey]struct{}),
		nextPort:  firstEphemeralPort,
	}
	n.sched.init(n)
	return n, nil
}

// Config returns the network's resolved configuration.
func (n *Network) Config() Config { return n.cfg }

// Listen opens an endpoint at addr. Port 0 picks a free port. The address
// must be a specific unicast address (IPv4-mapped addresses are unmapped).
func (n *Network) Listen(addr netip.AddrPort) (*Endpoint, error) {
	ip := addr.Addr().Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() {
		return nil, fmt.Errorf("%w: %v", ErrInvalidAddr, addr)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	addr = netip.AddrPortFrom(ip, addr.Port())
	if addr.Port() == 0 {
		found := false
		for range 65536 - firstEphemeralPort {
			p := n.nextPort
			n.nextPort++
			if n.nextPort == 0 {
				n.nextPort = firstEphemeralPort
			}
			if _, used := n.endpoints[netip.AddrPortFrom(ip, p)]; !used {
				addr, found = netip.AddrPortFrom(ip, p), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: no free port on %v", ErrAddrInUse, ip)
		}
	}
	if _, used := n.endpoints[addr]; used {
		return nil, fmt.Errorf("%w: %v", ErrAddrInUse, addr)
	}
	e := newEndpoint(n, addr)
	n.endpoints[addr] = e
	n.all = append(n.all, e)
	return e, nil
}

// SetDefaultLink sets the faults of every link without its own setting
// (SetLink, SetLoss): global loss, delay, jitter and duplication.
func (n *Network) SetDefaultLink(l Link) error {
	if err := l.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.def = l
	n.mu.Unlock()
	return nil
}

// SetLink sets the faults of the directed link from → to.
func (n *Network) SetLink(from, to netip.AddrPort, l Link) error {
	if err := l.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.links[linkKey{from, to}] = l
	n.mu.Unlock()
	return nil
}

// SetLoss sets the loss probability of the directed link from → to,
// keeping its other faults (the default link's, if it had none of its own).
func (n *Network) SetLoss(from, to netip.AddrPort, p float64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, ok := n.links[linkKey{from, to}]
	if !ok {
		l = n.def
	}
	l.Loss = p
	if err := l.validate(); err != nil {
		return err
	}
	n.links[linkKey{from, to}] = l
	return nil
}

// ResetLinks removes every per-link setting; the default link applies again.
func (n *Network) ResetLinks() {
	n.mu.Lock()
	clear(n.links)
	n.mu.Unlock()
}

// Partition cuts every link between a member of groupA and a member of
// groupB, both ways, until Heal. Datagrams already delayed in flight across
// the cut are dropped when they come due. Partitions accumulate.
func (n *Network) Partition(groupA, groupB []netip.AddrPort) {
	n.mu.Lock()
	for _, a := range groupA {
		for _, b := range groupB {
			n.blocked[linkKey{a, b}] = struct{}{}
			n.blocked[linkKey{b, a}] = struct{}{}
		}
	}
	n.mu.Unlock()
}

// Heal removes every partition.
func (n *Network) Heal() {
	n.mu.Lock()
	clear(n.blocked)
	n.mu.Unlock()
}

// Stats sums the counters of every endpoint ever opened on the network.
func (n *Network) Stats() Stats {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var s Stats
	for _, e := range n.all {
		es := e.ctr.snapshot()
		s.add(&es)
	}
	return s
}

// InFlight returns how many delayed datagrams the scheduler holds.
func (n *Network) InFlight() int { return n.sched.inFlight() }

// Close closes every endpoint and stops the delay scheduler, dropping what
// it still holds. Later calls return ErrClosed.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.closed = true
	eps := make([]*Endpoint, 0, len(n.endpoints))
	for _, e := range n.endpoints {
		eps = append(eps, e)
	}
	n.mu.Unlock()
	for _, e := range eps {
		e.Close()
	}
	n.sched.stop()
	return nil
}

// linkLocked returns the faults of from → to and whether it is cut.
// Caller holds n.mu (read).
func (n *Network) linkLocked(from, to netip.AddrPort) (Link, bool) {
	k := linkKey{from, to}
	if len(n.blocked) > 0 {
		if _, cut := n.blocked[k]; cut {
			return Link{}, true
		}
	}
	if len(n.links) > 0 {
		if l, ok := n.links[k]; ok {
			return l, false
		}
	}
	return n.def, false
}

// routeLocked sends one datagram from e along its link: the fault
// decisions, then immediate delivery or a scheduler entry. Caller holds
// n.mu (read) and e.txMu (for e.rng).
func (n *Network) routeLocked(e *Endpoint, b []byte, to netip.AddrPort, now int64) {
	l, cut := n.linkLocked(e.addr, to)
	if cut {
		e.ctr.drop(DropPartition)
		return
	}
	if l.Loss > 0 && e.rng.Float64() < l.Loss {
		e.ctr.drop(DropLoss)
		return
	}
	copies := 1
	if l.Duplicate > 0 && e.rng.Float64() < l.Duplicate {
		copies = 2
		e.ctr.duplicated.Add(1)
	}
	for range copies {
		d := l.Delay
		if l.Jitter > 0 {
			d += time.Duration(e.rng.Int64N(int64(l.Jitter)))
		}
		if d <= 0 {
			n.deliverLocked(e, b, to)
			continue
		}
		n.sched.push(e, b, to, now+int64(d))
	}
}

// deliverLocked puts a datagram into its receiver's queue now. Caller
// holds n.mu (read).
func (n *Network) deliverLocked(from *Endpoint, b []byte, to netip.AddrPort) {
	dst := n.endpoints[to]
	if dst == nil {
		from.ctr.drop(DropNoRoute)
		return
	}
	if !dst.enqueue(b, from.addr) {
		from.ctr.drop(DropNoRoute) // closed since the lookup
	}
}
