package sockopt

import (
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
