package allocprobe

import "sync/atomic"

// Site names a place on a hot path that calls Hit.
type Site uint8

// Sites.
const (
	SenderFrame Site = iota // the sender loop starts packing a frame
	ReaderBatch             // the receive path starts handling a batch of datagrams
)

var probe atomic.Pointer[func(Site)]

// Hit runs the installed probe, if any, for site. It does not allocate.
func Hit(site Site) {
	if f := probe.Load(); f != nil {
		(*f)(site)
	}
}

// Set installs f as the probe (nil removes it) and returns a function that
// restores the previous one. For tests only.
func Set(f func(Site)) (restore func()) {
	var p *func(Site)
	if f != nil {
		p = &f
	}
	old := probe.Swap(p)
	return func() { probe.Store(old) }
}
