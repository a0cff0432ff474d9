package main

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/warpmesh/warpmesh/bench/harness"
)

const natsSubject = "inv"

// natsSystem is NATS core: an embedded nats-server in a helper process of
// its own, one connection per receiver and one for the publisher.
func natsSystem() harness.System {
	return harness.System{
		Name: "nats",
		Prepare: func(spec *harness.Spec) ([]int, func(), error) {
			spec.Env["nats_port"] = strconv.Itoa(spec.Ports[len(spec.Ports)-2])
			pid, stop, err := harness.StartHelper(spec)
			if err != nil {
				return nil, nil, err
			}
			return []int{pid}, stop, nil
		},
		Helper: func(spec *harness.Spec) (func(), error) {
			port, _ := strconv.Atoi(spec.Env["nats_port"])
			s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, HTTPPort: 0})
			if err != nil {
				return nil, err
			}
			go s.Start()
			if !s.ReadyForConnections(10 * time.Second) {
				return nil, errors.New("nats-server not ready")
			}
			return s.Shutdown, nil
		},
		Receiver: func(spec *harness.Spec, idx int, deliver func([]byte)) (harness.Receiver, error) {
			r := &natsReceiver{}
			nc, err := nats.Connect(natsURL(spec), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrSlowConsumer) {
					r.slow.Add(1)
				}
			}))
			if err != nil {
				return nil, err
			}
			r.nc = nc
			r.sub, err = nc.Subscribe(natsSubject, func(m *nats.Msg) { deliver(m.Data) })
			if err != nil {
				nc.Close()
				return nil, err
			}
			if err := nc.Flush(); err != nil { // the server has the subscription
				nc.Close()
				return nil, err
			}
			return r, nil
		},
		Publisher: func(spec *harness.Spec) (harness.Publisher, error) {
			nc, err := nats.Connect(natsURL(spec))
			if err != nil {
				return nil, err
			}
			return natsPublisher{nc}, nil
		},
	}
}

func natsURL(spec *harness.Spec) string {
	return fmt.Sprintf("nats://127.0.0.1:%s", spec.Env["nats_port"])
}

type natsReceiver struct {
	nc   *nats.Conn
	sub  *nats.Subscription
	slow atomic.Uint64
}

// Drops counts messages the client dropped as a slow consumer.
func (r *natsReceiver) Drops() uint64 {
	d, err := r.sub.Dropped()
	if err != nil || d < 0 {
		return r.slow.Load()
	}
	return uint64(d)
}

func (r *natsReceiver) Close() error { r.nc.Close(); return nil }

type natsPublisher struct{ nc *nats.Conn }

// Publish buffers in the client; its flusher goroutine writes as soon as
// it can, so latency mode needs no explicit flush.
func (p natsPublisher) Publish(key []byte) error { return p.nc.Publish(natsSubject, key) }
func (p natsPublisher) Flush() error             { return nil }
func (p natsPublisher) Close() error {
	err := p.nc.Flush()
	p.nc.Close()
	return err
}
