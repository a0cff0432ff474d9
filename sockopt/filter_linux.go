package sockopt

import (
	"math"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetRandomDrop attaches a classic BPF socket filter (SO_ATTACH_FILTER)
// that makes the kernel drop about fraction of the datagrams arriving at
// this socket, each independently, using the random ancillary load. 0
// detaches the filter; 1 drops everything. It exists for loss tests.
func (c *Conn) SetRandomDrop(fraction float64) error {
	if err := checkFraction(fraction); err != nil {
		return err
	}
	return c.control(func(fd int) error {
		if fraction == 0 {
			err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
			if err == unix.ENOENT { // no filter attached: already detached
				return nil
			}
			return os.NewSyscallError("setsockopt SO_DETACH_FILTER", err)
		}
		prog := randomDropProgram(fraction)
		fprog := unix.SockFprog{
			Len:    uint16(len(prog)),
			Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0])),
		}
		return os.NewSyscallError("setsockopt SO_ATTACH_FILTER",
			unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog))
	})
}

// bpfInsn is one classic BPF instruction, laid out as struct sock_filter.
type bpfInsn struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Classic BPF opcodes and the Linux ancillary offset the drop filter uses.
const (
	bpfLdWAbs = 0x20 // BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20)
	bpfJgeK   = 0x35 // BPF_JMP (0x05) | BPF_JGE (0x30) | BPF_K (0x00)
	bpfRetK   = 0x06 // BPF_RET (0x06) | BPF_K (0x00)

	skfAdOff    = -0x1000 // SKF_AD_OFF: ancillary data instead of packet bytes
	skfAdRandom = 56      // SKF_AD_RANDOM: a fresh prandom_u32 per packet

	skfAdRandomK uint32 = 1<<32 + skfAdOff + skfAdRandom // the offset as the uint32 k field

	bpfAcceptAll = 0xffffffff // return value: keep the whole datagram
	bpfDrop      = 0          // return value: drop it
)

// randomDropProgram returns the classic BPF program that drops about
// fraction of the datagrams it sees:
//
//	0: ld  [SKF_AD_OFF+SKF_AD_RANDOM]   ; A = random uint32
//	1: jge #threshold, 2, 3             ; A >= fraction*2^32 ?
//	2: ret #0xffffffff                  ; keep
//	3: ret #0                           ; drop
//
// fraction must be in (0, 1]; 1 is a single "ret #0".
func randomDropProgram(fraction float64) []bpfInsn {
	if fraction >= 1 {
		return []bpfInsn{{Code: bpfRetK, K: bpfDrop}}
	}
	threshold := uint32(math.Round(fraction * (1 << 32)))
	return []bpfInsn{
		{Code: bpfLdWAbs, K: skfAdRandomK},
		{Code: bpfJgeK, Jt: 0, Jf: 1, K: threshold},
		{Code: bpfRetK, K: bpfAcceptAll},
		{Code: bpfRetK, K: bpfDrop},
	}
}
