// Package testdns is a small authoritative DNS server for tests: it answers
// A, AAAA and SRV questions from tables the test changes while it runs (the
// current "pods" of a headless Service), over UDP and TCP on an address the
// test chooses (127.0.0.x), and can be told to fail. Resolver returns a
// *net.Resolver that asks only this server, so a test never queries a real
// DNS server. It is for tests only.
package testdns

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Mode says how the server answers.
type Mode int32

// Modes.
const (
	Answer   Mode = iota // answer from the tables
	ServFail             // answer every question with SERVFAIL
	Silent               // answer nothing (lookups time out)
)

// SRV is one SRV record's target and port.
type SRV struct {
	Target string
	Port   uint16
}

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	udp  net.PacketConn
	tcp  net.Listener
	addr netip.AddrPort

	mu    sync.Mutex
	hosts map[string][]netip.Addr
	srvs  map[string][]SRV
	asked map[string]int

	mode    atomic.Int32
	queries atomic.Uint64
	wg      sync.WaitGroup
}

// Start serves on addr ("127.0.0.53:0" picks a free port) over UDP and TCP
// (same port) until the test ends.
func Start(t testing.TB, addr string) *Server {
	t.Helper()
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("testdns: %v", err)
	}
	ap := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	tcp, err := net.Listen("tcp", ap.String())
	if err != nil {
		udp.Close()
		t.Fatalf("testdns: %v", err)
	}
	s := &Server{udp: udp, tcp: tcp, addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
		hosts: map[string][]netip.Addr{}, srvs: map[string][]SRV{}, asked: map[string]int{}}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

// Addr returns the server's address.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// SetHost makes name (with or without the final dot) resolve to addrs:
// the IPv4 ones as A records, the IPv6 ones as AAAA. No addrs removes it
// (NXDOMAIN).
func (s *Server) SetHost(name string, addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(addrs) == 0 {
		delete(s.hosts, canonical(name))
		return
	}
	s.hosts[canonical(name)] = append([]netip.Addr(nil), addrs...)
}

// SetSRV makes name answer SRV questions with recs.
func (s *Server) SetSRV(name string, recs ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(recs) == 0 {
		delete(s.srvs, canonical(name))
		return
	}
	s.srvs[canonical(name)] = append([]SRV(nil), recs...)
}

// SetMode switches how the server answers.
func (s *Server) SetMode(m Mode) { s.mode.Store(int32(m)) }

// Queries returns the number of questions received so far.
func (s *Server) Queries() uint64 { return s.queries.Load() }

// Asked returns how many questions named name (any type) were received.
func (s *Server) Asked(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[canonical(name)]
}

// Resolver returns a resolver that sends every query to this server.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			if strings.HasPrefix(network, "tcp") {
				return d.DialContext(ctx, "tcp", s.addr.String())
			}
			return d.DialContext(ctx, "udp", s.addr.String())
		},
	}
}

func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := s.respond(buf[:n], false); ok {
			s.udp.WriteTo(resp, from) // a lost answer is retried by the client
		}
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				resp, ok := s.respond(q, true)
				if !ok {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				if _, err := c.Write(append(out, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

// respond builds the answer to one query; ok is false when there is none
// to send (Silent mode, or a query that does not parse).
func (s *Server) respond(query []byte, overTCP bool) (resp []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	limit := 512
	if err := p.SkipAllQuestions(); err == nil {
		p.SkipAllAnswers()
		p.SkipAllAuthorities()
		for {
			rh, err := p.AdditionalHeader()
			if err != nil {
				break
			}
			if rh.Type == dnsmessage.TypeOPT {
				limit = max(limit, int(rh.Class))
			}
			if p.SkipAdditional() != nil {
				break
			}
		}
	}
	s.queries.Add(1)
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	s.asked[name]++
	hosts, hostOK := s.hosts[name]
	srvs, srvOK := s.srvs[name]
	s.mu.Unlock()

	mode := Mode(s.mode.Load())
	if mode == Silent {
		return nil, false
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	switch {
	case mode == ServFail:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !hostOK && !srvOK:
		rh.RCode = dnsmessage.RCodeNameError
	}
	build := func(answers bool) ([]byte, error) {
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		if err := b.StartQuestions(); err != nil {
			return nil, err
		}
		if err := b.Question(q); err != nil {
			return nil, err
		}
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		if answers && rh.RCode == dnsmessage.RCodeSuccess {
			hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
			switch q.Type {
			case dnsmessage.TypeA:
				for _, a := range hosts {
					if a.Is4() {
						if err := b.AResource(hdr, dnsmessage.AResource{A: a.As4()}); err != nil {
							return nil, err
						}
					}
				}
			case dnsmessage.TypeAAAA:
				for _, a := range hosts {
					if a.Is6() {
						if err := b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: a.As16()}); err != nil {
							return nil, err
						}
					}
				}
			case dnsmessage.TypeSRV:
				for _, r := range srvs {
					target, err := dnsmessage.NewName(canonical(r.Target))
					if err != nil {
						return nil, err
					}
					if err := b.SRVResource(hdr, dnsmessage.SRVResource{Priority: 0, Weight: 1, Port: r.Port, Target: target}); err != nil {
						return nil, err
					}
				}
			}
		}
		return b.Finish()
	}
	resp, err = build(true)
	if err != nil {
		return nil, false
	}
	if !overTCP && len(resp) > limit {
		rh.Truncated = true // the client asks again over TCP
		if resp, err = build(false); err != nil {
			return nil, false
		}
	}
	return resp, true
}
