package sockopt

import (
	"fmt"
	"math"
)

// bpfInsn is one classic BPF instruction, laid out as struct sock_filter.
type bpfInsn struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Classic BPF opcodes and the Linux ancillary offset the drop filter uses.
const (
	bpfLdWAbs = 0x00 | 0x00 | 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfJgeK   = 0x05 | 0x30 | 0x00 // BPF_JMP | BPF_JGE | BPF_K
	bpfRetK   = 0x06 | 0x00        // BPF_RET | BPF_K

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

// checkFraction validates a SetRandomDrop argument.
func checkFraction(fraction float64) error {
	if math.IsNaN(fraction) || fraction < 0 || fraction > 1 {
		return fmt.Errorf("%w: fraction: %v not in [0, 1]", ErrConfig, fraction)
	}
	return nil
}
