package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
)

// Profiling a run: with MESHBENCH_PROFILE=dir every child writes a CPU
// profile (dir/<role><idx>.cpu.pprof) and an execution trace
// (dir/<role><idx>.trace) covering its whole life.
const envProfile = "MESHBENCH_PROFILE"

func startProfiles(role string, idx int) (stop func(), err error) {
	dir := os.Getenv(envProfile)
	if dir == "" {
		return func() {}, nil
	}
	base := filepath.Join(dir, fmt.Sprintf("%s%d", role, idx))
	cpu, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return nil, err
	}
	tr, err := os.Create(base + ".trace")
	if err != nil {
		cpu.Close()
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return nil, err
	}
	if err := trace.Start(tr); err != nil {
		return nil, err
	}
	return func() {
		trace.Stop()
		pprof.StopCPUProfile()
		cpu.Close()
		tr.Close()
	}, nil
}
