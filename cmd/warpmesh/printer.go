package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"sync"

	"github.com/warpmesh/warpmesh/engine"
)

// printer writes the --print stream (format in doc.go). Handlers append
// lines to a buffer and return at once; one goroutine takes whatever has
// accumulated and writes it in one call, so a slow reader of stdout never
// stalls the node's receive loop until the buffer reaches printerMax.
//
// The handlers are registered through engine.Options, so lines can arrive
// while engine.New runs, before the node (and so the self line) exists: the
// printer holds everything until self is called, then writes self first.
type printer struct {
	mu      sync.Mutex
	cond    *sync.Cond // signals buffer consumed or closed, to blocked appenders
	buf     []byte     // lines not yet written
	spare   []byte     // the writer's last buffer, reused
	holding bool       // nothing is written until self
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	w       io.Writer
	werr    error
}

// printerMax bounds the lines waiting for the writer; handlers wait beyond
// it (backpressure instead of unbounded memory).
const printerMax = 8 << 20

// newPrinter returns a printer writing to w at once.
func newPrinter(w io.Writer) *printer { return startPrinter(w, false) }

// newHeldPrinter returns a printer that holds its lines until self.
func newHeldPrinter(w io.Writer) *printer { return startPrinter(w, true) }

func startPrinter(w io.Writer, hold bool) *printer {
	p := &printer{w: w, holding: hold, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

func (p *printer) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for (len(p.buf) == 0 || p.holding) && !p.closed {
			p.mu.Unlock()
			<-p.wake
			p.mu.Lock()
		}
		out := p.buf
		p.buf, p.spare = p.spare[:0], nil
		closed := p.closed
		p.cond.Broadcast()
		p.mu.Unlock()
		if len(out) > 0 && p.werr == nil {
			_, p.werr = p.w.Write(out)
		}
		p.mu.Lock()
		p.spare = out[:0]
		p.mu.Unlock()
		if closed && len(out) == 0 {
			return
		}
	}
}

// add appends one line built by fn.
func (p *printer) add(fn func(b []byte) []byte) {
	p.mu.Lock()
	for len(p.buf) >= printerMax && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.buf = fn(p.buf)
	p.buf = append(p.buf, '\n')
	p.mu.Unlock()
	p.wakeWriter()
}

// wakeWriter signals the writer goroutine without blocking.
func (p *printer) wakeWriter() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// close writes what is pending and stops the writer; later lines are
// dropped. Lines still held (self never came: the node did not start) are
// dropped too, so nothing is ever written before a self line.
func (p *printer) close() error {
	p.mu.Lock()
	if p.holding {
		p.buf = p.buf[:0]
		p.holding = false
	}
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wakeWriter()
	<-p.done
	return p.werr
}

// Line formats. Ids are 16 lowercase hex digits; keys are Go-quoted
// (strconv.Quote), so any byte string reads back with strconv.Unquote.

func appendID(b []byte, id uint64) []byte {
	return fmt.Appendf(b, "%016x", id)
}

// self <id> <addr> epoch=<n> cluster=<quoted>
//
// It goes before every line held since the printer started, and releases
// them.
func (p *printer) self(n *engine.Node) {
	line := appendID([]byte("self "), n.ID())
	line = append(line, ' ')
	line = n.Addr().AppendTo(line)
	line = append(line, " epoch="...)
	line = strconv.AppendUint(line, n.Epoch(), 10)
	line = append(line, " cluster="...)
	line = strconv.AppendQuote(line, n.Cluster())
	line = append(line, '\n')
	p.mu.Lock()
	if !p.closed {
		p.buf = append(line, p.buf...)
	}
	p.holding = false
	p.mu.Unlock()
	p.wakeWriter()
}

// http <addr>
func (p *printer) http(addr netip.AddrPort) {
	p.add(func(b []byte) []byte { return addr.AppendTo(append(b, "http "...)) })
}

// inv <origin> epoch=<n> seq=<n> exact|prefix <quoted key>
func (p *printer) invalidation(inv engine.Invalidation) {
	p.add(func(b []byte) []byte {
		b = appendID(append(b, "inv "...), inv.Origin)
		b = append(b, " epoch="...)
		b = strconv.AppendUint(b, inv.Epoch, 10)
		b = append(b, " seq="...)
		b = strconv.AppendUint(b, inv.Seq, 10)
		if inv.Prefix {
			b = append(b, " prefix "...)
		} else {
			b = append(b, " exact "...)
		}
		return strconv.AppendQuote(b, string(inv.Key)) // the string conversion is elided
	})
}

// event <type> <id> <addr> epoch=<n> incarnation=<n>
// event gap <origin> epoch=<n> missing=<n> reason=<reason> first=<n> last=<n>
// event ready
func (p *printer) event(e engine.Event) {
	p.add(func(b []byte) []byte {
		b = append(b, "event "...)
		b = append(b, e.Type.String()...)
		if e.Type == engine.EventReady {
			return b
		}
		b = append(b, ' ')
		if e.Type == engine.EventGap {
			b = appendID(b, e.Gap.Origin)
			b = append(b, " epoch="...)
			b = strconv.AppendUint(b, e.Gap.Epoch, 10)
			b = append(b, " missing="...)
			b = strconv.AppendUint(b, e.Gap.Missing, 10)
			b = append(b, " reason="...)
			b = append(b, e.Gap.Reason.String()...)
			b = append(b, " first="...)
			b = strconv.AppendUint(b, e.Gap.First, 10)
			b = append(b, " last="...)
			return strconv.AppendUint(b, e.Gap.Last, 10)
		}
		b = appendID(b, e.Member.ID)
		b = append(b, ' ')
		b = e.Member.Addr.AppendTo(b)
		b = append(b, " epoch="...)
		b = strconv.AppendUint(b, e.Member.Epoch, 10)
		b = append(b, " incarnation="...)
		return strconv.AppendUint(b, e.Member.Incarnation, 10)
	})
}
