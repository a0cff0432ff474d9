package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// envSpec is the environment variable that carries a run's Spec to its
// child processes.
const envSpec = "MESHBENCH_SPEC"

// report is one JSON line a child writes to the parent.
type report struct {
	Ev     string      `json:"ev"` // ready, start, done, progress, result, error
	T      int64       `json:"t,omitempty"`
	Sent   uint64      `json:"sent,omitempty"`
	Start  int64       `json:"start,omitempty"`
	End    int64       `json:"end,omitempty"`
	Count  uint64      `json:"count,omitempty"`
	Unique uint64      `json:"unique,omitempty"`
	Drops  uint64      `json:"drops,omitempty"`
	Last   int64       `json:"last,omitempty"`
	Lat    Percentiles `json:"lat"`
	Err    string      `json:"err,omitempty"`
}

// emitter writes reports as JSON lines; several goroutines may emit.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *emitter) emit(r report) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(r) // the parent is gone if stdout fails; nothing to do
}

// runChild runs one role of one run in this process.
func runChild(role string, idx int, systems []System) error {
	var spec Spec
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &spec); err != nil {
		return fmt.Errorf("harness: child without a valid %s: %w", envSpec, err)
	}
	sys, ok := findSystem(systems, spec.System)
	if !ok {
		return fmt.Errorf("harness: unknown system %q", spec.System)
	}
	out := &emitter{enc: json.NewEncoder(os.Stdout)}
	clk, err := NewClock()
	if err != nil {
		return err
	}
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(stdinClosed)
	}()
	stopProfile, err := startProfiles(role, idx)
	if err != nil {
		return err
	}
	defer stopProfile()
	if dir := latDumpDir(); dir != "" {
		startAllocProfile()
		defer func() {
			_ = writeRuntimeMetrics(dir, role, idx)
			_ = writeAllocProfile(dir, role, idx)
		}()
	}
	slice := sliceFromEnv()
	applySlice(slice)
	if slice > 0 {
		go func() { // threads the runtime starts later
			for range time.Tick(10 * time.Millisecond) {
				applySlice(slice)
			}
		}()
	}
	fail := func(err error) error {
		out.emit(report{Ev: "error", Err: err.Error()})
		return err
	}
	switch role {
	case "recv":
		t := newTally(&spec, clk)
		rx, err := sys.Receiver(&spec, idx, t.deliver)
		if err != nil {
			return fail(err)
		}
		out.emit(report{Ev: "ready"})
		tick := time.NewTicker(5 * time.Millisecond)
		for i := 0; ; i++ {
			select {
			case <-tick.C:
				u := t.tick()
				if i%10 == 0 {
					out.emit(report{Ev: "progress", Unique: u})
				}
				continue
			case <-stdinClosed:
			}
			break
		}
		tick.Stop()
		t.tick()
		t.mu.Lock()
		r := report{Ev: "result", Count: t.count, Unique: t.unique, Last: t.last, Drops: rx.Drops(), Lat: percentiles(t.lat)}
		if dir := latDumpDir(); dir != "" && t.sent != nil {
			_ = writeLatDump(dir, idx, t.sent, t.lat)
			writeStatsLine(dir, role, idx, rx)
		}
		t.mu.Unlock()
		out.emit(r)
		return rx.Close()
	case "pub":
		p, err := sys.Publisher(&spec)
		if err != nil {
			return fail(err)
		}
		out.emit(report{Ev: "start", T: clk.Now()})
		sent, start, end, err := runPublisher(&spec, p, clk)
		if err != nil {
			return fail(err)
		}
		out.emit(report{Ev: "done", Sent: sent, Start: start, End: end})
		<-stdinClosed
		if dir := latDumpDir(); dir != "" {
			writeStatsLine(dir, role, idx, p)
		}
		return p.Close()
	case "helper":
		if sys.Helper == nil {
			return fail(fmt.Errorf("harness: system %s has no helper", sys.Name))
		}
		stop, err := sys.Helper(&spec)
		if err != nil {
			return fail(err)
		}
		out.emit(report{Ev: "ready"})
		<-stdinClosed
		stop()
		return nil
	}
	return fmt.Errorf("harness: unknown role %q", role)
}

func findSystem(systems []System, name string) (System, bool) {
	for _, s := range systems {
		if s.Name == name {
			return s, true
		}
	}
	return System{}, false
}
