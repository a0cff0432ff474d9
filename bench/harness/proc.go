package harness

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on every Linux
// the harness targets).
const clockTicks = 100

// procCPU returns the user+system CPU time of pid, in clock ticks, from
// /proc/<pid>/stat (fields 14 and 15, counted after the command name).
func procCPU(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("harness: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("harness: /proc/%d/stat: short", pid)
	}
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("harness: /proc/%d/stat: bad times", pid)
	}
	return u + s, nil
}

// machineBusy returns busy and total CPU ticks over all cores from the
// first line of /proc/stat (busy excludes idle and iowait).
func machineBusy() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("harness: /proc/stat: unexpected first line")
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("harness: /proc/stat: %w", err)
		}
		if i >= 8 { // guest and guest_nice are already counted in user
			break
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}

// cpuSample is the CPU state at one instant: per process and whole machine.
type cpuSample struct {
	procs       map[int]uint64
	busy, total uint64
}

func sampleCPU(pids []int) cpuSample {
	s := cpuSample{procs: make(map[int]uint64, len(pids))}
	for _, p := range pids {
		if t, err := procCPU(p); err == nil {
			s.procs[p] = t
		}
	}
	s.busy, s.total, _ = machineBusy()
	return s
}

// cores converts a tick delta over seconds into cores (1.0 = one core busy).
func cores(ticks uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(ticks) / clockTicks / seconds
}
