package sockopt

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// setMulticastOptions applies the Config's multicast interface, loop and
// TTL. IPv4 goes through x/net/ipv4; IPv6 through setMulticast6. A
// dual-stack socket (bound to ::) gets both, so it can join IPv4 and IPv6
// groups; where the system refuses IPv4 options on it, it joins IPv6
// groups only.
func (c *Conn) setMulticastOptions(cfg Config, ifi *net.Interface) error {
	if c.is6 {
		if err := c.setMulticast6(cfg, ifi); err != nil {
			return err
		}
		if !cfg.BindAddr.IsUnspecified() {
			return nil
		}
		if err := c.setMulticast4(cfg, ifi); err != nil {
			c.pc4 = nil
		}
		return nil
	}
	return c.setMulticast4(cfg, ifi)
}

// setMulticast4 sets the IPv4 multicast options.
func (c *Conn) setMulticast4(cfg Config, ifi *net.Interface) error {
	c.pc4 = ipv4.NewPacketConn(c.udp)
	if ifi != nil {
		if err := c.pc4.SetMulticastInterface(ifi); err != nil {
			return fmt.Errorf("sockopt: IP_MULTICAST_IF %s: %w", ifi.Name, err)
		}
	}
	if err := c.pc4.SetMulticastLoopback(cfg.MulticastLoop); err != nil {
		return fmt.Errorf("sockopt: IP_MULTICAST_LOOP: %w", err)
	}
	if err := c.pc4.SetMulticastTTL(cfg.MulticastTTL); err != nil {
		return fmt.Errorf("sockopt: IP_MULTICAST_TTL: %w", err)
	}
	return nil
}

// JoinGroup joins the multicast group on the named interface, so datagrams
// sent to the group (and this socket's port) arrive at ReadBatch.
func (c *Conn) JoinGroup(group netip.Addr, ifname string) error {
	return c.membership(group, ifname, true)
}

// LeaveGroup leaves a group joined with JoinGroup.
func (c *Conn) LeaveGroup(group netip.Addr, ifname string) error {
	return c.membership(group, ifname, false)
}

func (c *Conn) membership(group netip.Addr, ifname string, join bool) error {
	group = group.Unmap()
	if !group.IsMulticast() {
		return fmt.Errorf("%w: group %v is not a multicast address", ErrConfig, group)
	}
	if ifname == "" {
		return fmt.Errorf("%w: ifname: empty (name the interface, e.g. \"lo\")", ErrConfig)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("%w: ifname: %v", ErrConfig, err)
	}
	if group.Is6() {
		if !c.is6 {
			return fmt.Errorf("%w: IPv6 group %v on an IPv4 socket", ErrConfig, group)
		}
		return c.group6(group, ifi, join)
	}
	if c.pc4 == nil {
		return fmt.Errorf("%w: IPv4 group %v on an IPv6 socket (bind :: or an IPv4 address)", ErrConfig, group)
	}
	ga := &net.UDPAddr{IP: group.AsSlice()}
	if join {
		err = c.pc4.JoinGroup(ifi, ga)
	} else {
		err = c.pc4.LeaveGroup(ifi, ga)
	}
	if err != nil {
		op := "join"
		if !join {
			op = "leave"
		}
		return fmt.Errorf("sockopt: %s group %v on %s: %w", op, group, ifname, err)
	}
	return nil
}
