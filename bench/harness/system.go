package harness

import "time"

// Mode is a workload.
type Mode string

// Workloads.
const (
	// Throughput publishes as fast as the publisher can for Spec.Duration
	// and counts what arrives at each receiver.
	Throughput Mode = "throughput"
	// Latency publishes at Spec.Rate and measures publish-to-apply time.
	Latency Mode = "latency"
)

// Spec is one run: what every process of it needs to know. The parent
// fills it and hands it to each child in the environment.
type Spec struct {
	System    string
	Mode      Mode
	Receivers int
	KeySize   int
	Duration  time.Duration
	Rate      int // invalidations per second, Latency mode
	// Ports are free 127.0.0.1 ports (free for UDP and TCP): Ports[0] for
	// the publisher, Ports[1+i] for receiver i, the rest for helpers.
	Ports []int
	// Env carries what a System's Prepare learned (broker address, ...).
	Env map[string]string
}

// System is one messaging system under test. Prepare runs in the parent;
// Receiver and Publisher run in child processes.
type System struct {
	Name string
	// Prepare, optional, runs in the parent before any child starts: it may
	// start a broker process and fill spec.Env. It returns the pids whose
	// CPU is charged to the system and a cleanup that stops them.
	Prepare func(spec *Spec) (pids []int, cleanup func(), err error)
	// Receiver starts receiver idx; deliver must be called with every
	// key received (a view is fine: deliver does not retain it). It returns
	// once the receiver is subscribed.
	Receiver func(spec *Spec, idx int, deliver func(key []byte)) (Receiver, error)
	// Publisher returns a publisher that is connected and whose receivers
	// are all known (membership converged, subscriptions visible).
	Publisher func(spec *Spec) (Publisher, error)
	// Helper, optional, runs a broker in a child process of its own
	// (started from Prepare with StartHelper); it returns once serving and
	// the returned stop is called when the parent ends the run.
	Helper func(spec *Spec) (stop func(), err error)
}

// Receiver is the receiving side of a System in its process.
type Receiver interface {
	// Drops reports messages the system itself says it dropped (slow
	// consumer, queue overflow), or 0 when it cannot tell.
	Drops() uint64
	Close() error
}

// Publisher is the publishing side of a System in its process.
type Publisher interface {
	// Publish sends key (or queues it: pipelined clients); key is reused
	// by the caller after the call.
	Publish(key []byte) error
	// Flush pushes out whatever Publish queued.
	Flush() error
	Close() error
}
