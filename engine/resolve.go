package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Seed discovery through DNS.
//
// A Peers entry is one of:
//
//	10.0.0.1:7946, [fd00::1]:7946   a literal address, used as given
//	name:7946, dns+name:7946        every A and AAAA record of name, with the port
//	dnssrv+_svc._udp.name           every target of the SRV records, with its port
//	_svc._udp.name                  the same (a leading underscore means SRV)
//
// Names are looked up by a goroutine of their own (never on the loop that
// detects failures), every Heartbeat, each lookup bounded by a timeout. A
// lookup that fails keeps the last good answer of that name, so a DNS
// outage never empties the seed list. The answer is filtered to the address
// families the node's socket can reach and never contains the node itself.
//
// A headless Service or a Swarm tasks.<service> name may return hundreds of
// addresses. Sending a heartbeat to all of them every round would be a join
// storm (each answers a newcomer at once, with a digest); one reachable
// seed is enough to learn the mesh, so each round contacts at most
// seedsPerRound of the resolved addresses, walking through the whole answer
// round by round from a random starting point. Literal seeds are always
// contacted.

// Tunables of seed resolution.
const (
	// seedsPerRound bounds the resolved seed addresses one heartbeat
	// round contacts.
	seedsPerRound = 4
	// maxSeedAddrs caps the addresses kept per seed entry (and the SRV
	// targets followed per entry).
	maxSeedAddrs = 1024
	// minLookupTimeout and maxLookupTimeout bound one lookup: Heartbeat,
	// clamped to this range.
	minLookupTimeout = 250 * time.Millisecond
	maxLookupTimeout = 3 * time.Second
	// srvLookupWorkers bounds concurrent target lookups of one SRV name.
	srvLookupWorkers = 8
)

// seedKind says how a Peers entry is turned into addresses.
type seedKind uint8

const (
	seedLiteral seedKind = iota // an IP address and port
	seedHost                    // A and AAAA records of host, with port
	seedSRV                     // SRV records of host, then A/AAAA of each target
)

// seedSpec is one parsed Peers entry.
type seedSpec struct {
	raw     string
	kind    seedKind
	literal netip.AddrPort // seedLiteral
	host    string         // seedHost, seedSRV
	port    uint16         // seedHost
}

// parseSeed parses one Peers entry; errors name what is wrong with it.
func parseSeed(p string) (seedSpec, error) {
	s := seedSpec{raw: p}
	if name, ok := strings.CutPrefix(p, "dnssrv+"); ok {
		if name == "" || strings.Contains(name, ":") {
			return s, errors.New("dnssrv+ takes a bare SRV name (_service._proto.name), no port")
		}
		s.kind, s.host = seedSRV, name
		return s, nil
	}
	if strings.HasPrefix(p, "_") && !strings.Contains(p, ":") {
		if strings.Count(p, ".") < 2 {
			return s, errors.New("an SRV name is _service._proto.name")
		}
		s.kind, s.host = seedSRV, p
		return s, nil
	}
	p = strings.TrimPrefix(p, "dns+")
	if ap, err := netip.ParseAddrPort(p); err == nil {
		if ap.Port() == 0 {
			return s, errors.New("port must be 1..65535")
		}
		s.kind, s.literal = seedLiteral, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		return s, nil
	}
	host, port, err := net.SplitHostPort(p)
	if err != nil || host == "" {
		return s, errors.New("must be host:port, dnssrv+_service._proto.name or _service._proto.name")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return s, errors.New("port must be 1..65535")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return s, errors.New("an IPv6 address needs brackets: [addr]:port")
	}
	s.kind, s.host, s.port = seedHost, host, uint16(n)
	return s, nil
}

// lookupTimeout bounds one DNS lookup for a node with this heartbeat.
func lookupTimeout(heartbeat time.Duration) time.Duration {
	return min(max(heartbeat, minLookupTimeout), maxLookupTimeout)
}

// seedResolver keeps the latest addresses of the node's seeds. Its run
// goroutine looks names up; the heartbeater reads the result with next.
type seedResolver struct {
	specs   []seedSpec
	res     *net.Resolver
	every   time.Duration       // re-resolution period (Heartbeat)
	timeout time.Duration       // per lookup
	network string              // "ip4", "ip6" or "ip": families the socket can send to
	has4    bool                // dual stack: the host has a global IPv4 address
	has6    bool                // dual stack: the host has a global IPv6 address
	local   map[netip.Addr]bool // wildcard bind: this host's addresses (all are self)
	self    map[netip.AddrPort]bool
	ports   map[uint16]bool               // this node's advertised and bound ports
	log     func(msg string, args ...any) // rate limited

	mu      sync.Mutex
	good    [][]netip.AddrPort // per spec: last good answer
	merged  []netip.AddrPort   // resolved addresses, sorted, deduplicated, self removed
	gen     uint64             // bumped when merged gains an address
	seen    uint64             // gen when news last reported
	cursor  int                // where the next round's window starts in merged
	targets map[string][]netip.AddrPort
	rounds  uint64 // completed resolution rounds (tests)
}

// init prepares the resolver from the validated config. self lists the
// node's own addresses (advertised and bound).
func (r *seedResolver) init(c *config, self []netip.AddrPort, logf func(string, ...any)) {
	r.specs = c.seedSpecs
	r.res = c.Resolver
	if r.res == nil {
		r.res = net.DefaultResolver
	}
	r.every = c.Heartbeat
	r.timeout = lookupTimeout(c.Heartbeat)
	r.network = "ip"
	switch {
	case c.Transport != nil:
		if a := c.Transport.LocalAddr().Addr(); a.Is4() {
			r.network = "ip4"
		}
	case c.bind.Is4():
		r.network = "ip4"
	case !c.bind.IsUnspecified():
		r.network = "ip6"
	}
	if c.Transport == nil && c.bind.IsUnspecified() {
		// Read here, in New, so that a node created inside a network
		// namespace sees that namespace's interfaces.
		r.local, r.has4, r.has6 = hostAddrs()
	}
	r.self = make(map[netip.AddrPort]bool)
	r.ports = make(map[uint16]bool)
	for _, a := range self {
		if a.IsValid() {
			r.self[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())] = true
			r.ports[a.Port()] = true
		}
	}
	r.log = logf
	r.good = make([][]netip.AddrPort, len(r.specs))
	r.targets = make(map[string][]netip.AddrPort)
	r.cursor = rand.IntN(maxSeedAddrs)
	for i, s := range r.specs {
		if s.kind == seedLiteral {
			r.good[i] = []netip.AddrPort{s.literal}
		}
	}
}

// needsLookups reports whether any seed is a name.
func (r *seedResolver) needsLookups() bool {
	for _, s := range r.specs {
		if s.kind != seedLiteral {
			return true
		}
	}
	return false
}

// run resolves every name at once and then every period until ctx ends.
func (r *seedResolver) run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.resolveAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// resolveAll runs one round: every name is looked up concurrently, and each
// answer that arrives replaces that name's last good one.
func (r *seedResolver) resolveAll(ctx context.Context) {
	var wg sync.WaitGroup
	answers := make([][]netip.AddrPort, len(r.specs))
	ok := make([]bool, len(r.specs))
	for i, s := range r.specs {
		if s.kind == seedLiteral {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var addrs []netip.AddrPort
			var err error
			if s.kind == seedSRV {
				addrs, err = r.lookupSRV(ctx, s.host)
			} else {
				addrs, err = r.lookupHost(ctx, s.host, s.port)
			}
			if err != nil {
				if ctx.Err() == nil {
					r.log("warpmesh: seed lookup failed; keeping its last answer", "peer", s.raw, "err", err)
				}
				return
			}
			answers[i], ok[i] = addrs, true
		}()
	}
	wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.specs {
		if !ok[i] {
			continue
		}
		kept := answers[i][:0]
		for _, a := range answers[i] {
			if r.reachable(a.Addr()) && !r.isSelf(a) {
				kept = append(kept, a)
			}
		}
		r.good[i] = kept
	}
	var merged []netip.AddrPort
	for i, s := range r.specs {
		if s.kind != seedLiteral {
			merged = append(merged, r.good[i]...)
		}
	}
	slices.SortFunc(merged, netip.AddrPort.Compare)
	merged = slices.Compact(merged)
	for _, a := range merged {
		if _, found := slices.BinarySearchFunc(r.merged, a, netip.AddrPort.Compare); !found {
			r.gen++
			break
		}
	}
	r.merged = merged
	r.rounds++
}

// isSelf reports whether a is this node: its advertised or bound address,
// or, bound to a wildcard, any address of this host on its port.
func (r *seedResolver) isSelf(a netip.AddrPort) bool {
	return r.self[a] || (r.ports[a.Port()] && r.local[a.Addr()])
}

// reachable reports whether the socket can send to a: its family and, on a
// dual-stack socket, only a family the host has a global address of
// (loopback addresses are always reachable).
func (r *seedResolver) reachable(a netip.Addr) bool {
	switch {
	case r.network == "ip4":
		return a.Is4()
	case r.network == "ip6":
		return a.Is6()
	case r.local == nil || a.IsLoopback():
		return true
	case a.Is4():
		return r.has4
	}
	return r.has6
}

// hostAddrs lists the addresses of this host's interfaces and whether it
// has a global unicast IPv4 and IPv6 address.
func hostAddrs() (local map[netip.Addr]bool, has4, has6 bool) {
	local = make(map[netip.Addr]bool)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return local, true, true // cannot tell: filter nothing
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		local[ip] = true
		if ip.IsGlobalUnicast() {
			has4 = has4 || ip.Is4()
			has6 = has6 || ip.Is6()
		}
	}
	return local, has4, has6
}

// lookupHost returns every address of host (of the socket's families),
// with port.
func (r *seedResolver) lookupHost(ctx context.Context, host string, port uint16) ([]netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ips, err := r.res.LookupNetIP(ctx, r.network, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no addresses for %s", host)
	}
	out := make([]netip.AddrPort, 0, min(len(ips), maxSeedAddrs))
	for _, ip := range ips[:min(len(ips), maxSeedAddrs)] {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), port))
	}
	return out, nil
}

// lookupSRV returns every address of every target of name's SRV records,
// each with its record's port. A target whose lookup fails keeps its last
// good addresses.
func (r *seedResolver) lookupSRV(ctx context.Context, name string) ([]netip.AddrPort, error) {
	sctx, cancel := context.WithTimeout(ctx, r.timeout)
	_, srvs, err := r.res.LookupSRV(sctx, "", "", name)
	cancel()
	if err != nil {
		return nil, err
	}
	if len(srvs) == 0 {
		return nil, fmt.Errorf("no SRV records for %s", name)
	}
	srvs = srvs[:min(len(srvs), maxSeedAddrs)]
	results := make([][]netip.AddrPort, len(srvs))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(srvLookupWorkers, len(srvs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i], _ = r.lookupTarget(ctx, name, srvs[i].Target, srvs[i].Port)
			}
		}()
	}
	for i := range srvs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	var out []netip.AddrPort
	seen := make(map[string]bool, len(srvs))
	for i, s := range srvs {
		seen[targetKey(name, s.Target, s.Port)] = true
		out = append(out, results[i]...)
	}
	r.mu.Lock()
	for key := range r.targets {
		if strings.HasPrefix(key, name+"|") && !seen[key] {
			delete(r.targets, key) // a target no longer listed is forgotten
		}
	}
	r.mu.Unlock()
	if len(out) == 0 {
		return nil, fmt.Errorf("no SRV target of %s resolves", name)
	}
	return out, nil
}

// lookupTarget resolves one SRV target, falling back to its last good
// answer when the lookup fails.
func (r *seedResolver) lookupTarget(ctx context.Context, name, target string, port uint16) ([]netip.AddrPort, error) {
	key := targetKey(name, target, port)
	addrs, err := r.lookupHost(ctx, target, port)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		return r.targets[key], err
	}
	if len(r.targets) < maxSeedAddrs {
		r.targets[key] = addrs
	} else if _, ok := r.targets[key]; ok {
		r.targets[key] = addrs
	}
	return addrs, nil
}

// targetKey names one SRV target of one SRV name in the target cache.
func targetKey(name, target string, port uint16) string {
	return name + "|" + target + ":" + strconv.Itoa(int(port))
}

// next appends this round's seeds to dst: every literal seed and a window
// of at most seedsPerRound resolved addresses, advancing the window so
// that successive rounds walk through the whole answer.
func (r *seedResolver) next(dst []netip.AddrPort) []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.specs {
		if s.kind == seedLiteral {
			dst = append(dst, r.good[i]...)
		}
	}
	n := len(r.merged)
	if n == 0 {
		return dst
	}
	k := min(n, seedsPerRound)
	start := r.cursor % n
	for i := range k {
		dst = append(dst, r.merged[(start+i)%n])
	}
	r.cursor = start + k
	return dst
}

// news reports, once, that the resolved answer gained an address since
// the last call. Only the heartbeater calls it.
func (r *seedResolver) news() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	fresh := r.gen != r.seen
	r.seen = r.gen
	return fresh
}

// snapshot returns the resolved addresses and the rounds completed (tests).
func (r *seedResolver) snapshot() ([]netip.AddrPort, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.merged), r.rounds
}
