package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/warpmesh/warpmesh/bench/harness"
)

const redisChannel = "inv"

// redisSystem is Redis pub/sub against the redis-server run.sh started
// (REDIS_ADDR, REDIS_PID): one subscriber connection per receiver and a
// pipelined publisher.
func redisSystem() harness.System {
	return harness.System{
		Name: "redis",
		Prepare: func(spec *harness.Spec) ([]int, func(), error) {
			addr, pid := os.Getenv("REDIS_ADDR"), os.Getenv("REDIS_PID")
			if addr == "" {
				return nil, nil, errors.New("REDIS_ADDR not set (run through run.sh)")
			}
			spec.Env["redis_addr"] = addr
			p, err := strconv.Atoi(pid)
			if err != nil {
				return nil, nil, nil // CPU of redis-server not accounted
			}
			return []int{p}, nil, nil
		},
		Receiver: func(spec *harness.Spec, idx int, deliver func([]byte)) (harness.Receiver, error) {
			ctx, cancel := context.WithCancel(context.Background())
			rdb := redis.NewClient(&redis.Options{Addr: spec.Env["redis_addr"]})
			ps := rdb.Subscribe(ctx, redisChannel)
			if _, err := ps.Receive(ctx); err != nil { // subscription confirmed
				cancel()
				return nil, err
			}
			r := &redisReceiver{rdb: rdb, ps: ps, cancel: cancel, done: make(chan struct{})}
			go func() {
				defer close(r.done)
				for {
					m, err := ps.ReceiveMessage(ctx)
					if err != nil {
						if ctx.Err() == nil {
							r.errs.Add(1) // disconnected (e.g. output buffer limit)
						}
						return
					}
					deliver([]byte(m.Payload)) // go-redis hands payloads as strings
				}
			}()
			return r, nil
		},
		Publisher: func(spec *harness.Spec) (harness.Publisher, error) {
			rdb := redis.NewClient(&redis.Options{Addr: spec.Env["redis_addr"]})
			if err := rdb.Ping(context.Background()).Err(); err != nil {
				return nil, err
			}
			return &redisPublisher{rdb: rdb, pipe: rdb.Pipeline()}, nil
		},
	}
}

type redisReceiver struct {
	rdb    *redis.Client
	ps     *redis.PubSub
	cancel context.CancelFunc
	done   chan struct{}
	errs   atomic.Uint64
}

// Drops reports 1 when the server cut the subscriber off.
func (r *redisReceiver) Drops() uint64 { return r.errs.Load() }

func (r *redisReceiver) Close() error {
	r.cancel()
	err := r.ps.Close()
	<-r.done
	return errors.Join(err, r.rdb.Close())
}

// redisPublisher pipelines PUBLISH commands: Flush (and every 256th
// Publish) sends the pipeline in one write.
type redisPublisher struct {
	rdb  *redis.Client
	pipe redis.Pipeliner
	n    int
}

func (p *redisPublisher) Publish(key []byte) error {
	p.pipe.Publish(context.Background(), redisChannel, string(key)) // copies: the pipeline keeps it
	if p.n++; p.n == 256 {
		return p.Flush()
	}
	return nil
}

func (p *redisPublisher) Flush() error {
	if p.n == 0 {
		return nil
	}
	p.n = 0
	_, err := p.pipe.Exec(context.Background())
	return err
}

func (p *redisPublisher) Close() error { return p.rdb.Close() }
