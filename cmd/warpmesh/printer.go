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
type printer struct {
	mu     sync.Mutex
	cond   *sync.Cond // signals buffer consumed or closed, to blocked appenders
	buf    []byte     // lines not yet written
	spare  []byte     // the writer's last buffer, reused
	closed bool
	wake   chan struct{}
	done   chan struct{}
	w      io.Writer
	werr   error
}

// printerMax bounds the lines waiting for the writer; handlers wait beyond
// it (backpressure instead of unbounded memory).
const printerMax = 8 << 20

func newPrinter(w io.Writer) *printer {
	p := &printer{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

func (p *printer) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.buf) == 0 && !p.closed {
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
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// close writes what is pending and stops the writer; later lines are dropped.
func (p *printer) close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	<-p.done
	return p.werr
}

// Line formats. Ids are 16 lowercase hex digits; keys are Go-quoted
// (strconv.Quote), so any byte string reads back with strconv.Unquote.

func appendID(b []byte, id uint64) []byte {
	return fmt.Appendf(b, "%016x", id)
}

// self <id> <addr> epoch=<n> cluster=<quoted>
func (p *printer) self(n *engine.Node) {
	p.add(func(b []byte) []byte {
		b = append(b, "self "...)
		b = appendID(b, n.ID())
		b = append(b, ' ')
		b = n.Addr().AppendTo(b)
		b = append(b, " epoch="...)
		b = strconv.AppendUint(b, n.Epoch(), 10)
		b = append(b, " cluster="...)
		return strconv.AppendQuote(b, n.Cluster())
	})
}

// http <addr>
func (p *printer) http(addr netip.AddrPort) {
	p.add(func(b []byte) []byte { return addr.AppendTo(append(b, "http "...)) })
}

// inv <origin> exact|prefix <quoted key>
func (p *printer) invalidation(inv engine.Invalidation) {
	p.add(func(b []byte) []byte {
		b = appendID(append(b, "inv "...), inv.Origin)
		if inv.Prefix {
			b = append(b, " prefix "...)
		} else {
			b = append(b, " exact "...)
		}
		return strconv.AppendQuote(b, string(inv.Key)) // the string conversion is elided
	})
}

// event <type> <id> <addr> epoch=<n> incarnation=<n>
// event gap <origin> epoch=<n> missing=<n> reason=<reason>
func (p *printer) event(e engine.Event) {
	p.add(func(b []byte) []byte {
		b = append(b, "event "...)
		b = append(b, e.Type.String()...)
		b = append(b, ' ')
		if e.Type == engine.EventGap {
			b = appendID(b, e.Gap.Origin)
			b = append(b, " epoch="...)
			b = strconv.AppendUint(b, e.Gap.Epoch, 10)
			b = append(b, " missing="...)
			b = strconv.AppendUint(b, e.Gap.Missing, 10)
			b = append(b, " reason="...)
			return append(b, e.Gap.Reason.String()...)
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
