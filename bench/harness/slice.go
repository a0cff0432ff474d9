package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Experiment: with MESHBENCH_SLICE_US=n a child asks the kernel for an
// n-µs EEVDF time slice (sched_setattr with sched_runtime, Linux 6.12+) on
// every thread it has, at start and on each later check, whatever the
// system under test. A task with a shorter slice than the one running may
// preempt it when it wakes (the scheduler's PREEMPT_SHORT), instead of
// waiting out the running task's protected slice (1.4 ms here).
const envSlice = "MESHBENCH_SLICE_US"

func sliceFromEnv() time.Duration {
	us, err := strconv.Atoi(os.Getenv(envSlice))
	if err != nil || us <= 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

// applySlice sets slice on every thread of this process; it returns how
// many threads took it.
func applySlice(slice time.Duration) int {
	if slice <= 0 {
		return 0
	}
	tasks, _ := filepath.Glob("/proc/self/task/*")
	ok := 0
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0 /* SCHED_OTHER */, Runtime: uint64(slice)}
		if unix.SchedSetAttr(tid, &attr, 0) == nil {
			ok++
		}
	}
	return ok
}
