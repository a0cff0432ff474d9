package bridge

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// JetStream mode. Each mesh's batches go into a stream of their own,
// <prefix with '.' as '_'>_<mesh>, with a Nats-Msg-Id of
// <mesh>-<bridge id>-<stream epoch>-<batch seq> (the batch's identity, so a
// republished batch is stored once). An importing mesh reads each remote
// stream through one durable push consumer, <Durable>_<remote>, shared by
// its bridges: only the bridge that imports for the mesh consumes (a
// standby has no subscription), and whenever a bridge becomes the importer
// — at start, on a takeover, after a reconnect — it reads the consumer's
// ack floor, deletes it and creates it again from the next stream
// sequence. Everything not yet acknowledged is then delivered again, in
// order, at once (rather than after the ack wait), so a NATS restart, a
// bridge restart or a takeover replays instead of flushing. It flushes
// only when a consumer is new (nothing to resume) or its next batch has
// already left the stream (MaxAge).
type jetStream struct {
	b  *Bridge
	js nats.JetStreamContext

	mu      sync.Mutex
	subs    map[string]*nats.Subscription // by remote mesh
	wg      sync.WaitGroup
	closed  atomic.Bool
	started atomic.Bool // start succeeded: reconnects resubscribe
}

func streamName(prefix, mesh string) string { return strings.ReplaceAll(prefix, ".", "_") + "_" + mesh }

// start opens the JetStream context, makes sure the streams exist and
// creates the consumers.
func (j *jetStream) start() error {
	b := j.b
	var err error
	j.js, err = b.nc.JetStream(nats.PublishAsyncMaxPending(4096),
		nats.PublishAsyncErrHandler(func(_ nats.JetStream, _ *nats.Msg, err error) {
			b.ctr.exportErrors.Add(1)
			b.exp.flagLoss()
			if b.lim.allow() {
				b.log.Warn("bridge: JetStream publish failed; the next batch carries a loss flag", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("bridge: JetStream: %w", err)
	}
	if !b.nc.IsConnected() {
		return fmt.Errorf("bridge: JetStream mode needs NATS reachable at start: %w", nats.ErrNoServers)
	}
	for _, m := range append([]string{b.cfg.Name}, b.cfg.Remotes...) {
		if err := j.ensureStream(m); err != nil {
			return err
		}
	}
	j.started.Store(true)
	return nil
}

func (j *jetStream) ensureStream(mesh string) error {
	o := j.b.cfg.JetStream
	sc := &nats.StreamConfig{
		Name:       streamName(j.b.cfg.SubjectPrefix, mesh),
		Subjects:   []string{j.b.cfg.invSubjectOf(mesh)},
		Storage:    nats.FileStorage,
		MaxAge:     o.MaxAge,
		Replicas:   max(o.Replicas, 1),
		Duplicates: 2 * time.Minute,
	}
	if sc.MaxAge == 0 {
		sc.MaxAge = time.Hour
	}
	if o.Memory {
		sc.Storage = nats.MemoryStorage
	}
	if _, err := j.js.StreamInfo(sc.Name); err == nil {
		return nil
	} else if !errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("bridge: JetStream stream %s: %w", sc.Name, err)
	}
	if _, err := j.js.AddStream(sc); err != nil && !errors.Is(err, nats.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("bridge: create JetStream stream %s: %w", sc.Name, err)
	}
	return nil
}

// subscribeAll (re)creates every remote's consumer from its ack floor,
// if this bridge still imports, and reports whether every one resumed.
func (j *jetStream) subscribeAll() (resumedAll bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	resumedAll = true
	for _, r := range j.b.cfg.Remotes {
		if !j.b.leader.Load() || j.closed.Load() {
			return true, nil // stood down meanwhile: the next importer replays
		}
		resumed, err := j.subscribe(r)
		if err != nil {
			return false, err
		}
		resumedAll = resumedAll && resumed
	}
	return resumedAll, nil
}

// stepDown drops the subscriptions (the consumers stay, for the next
// importer to resume).
func (j *jetStream) stepDown() {
	j.mu.Lock()
	for r, sub := range j.subs {
		sub.Unsubscribe() // a plain subscription: the consumer is untouched
		delete(j.subs, r)
	}
	j.mu.Unlock()
}

// lead (re)creates the consumers off the calling goroutine, retrying
// until it succeeds, the bridge stands down or closes; it flushes the
// mesh when a consumer could not resume.
func (j *jetStream) lead() {
	if j.closed.Load() || !j.started.Load() {
		return
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		for !j.closed.Load() && j.b.leader.Load() {
			resumed, err := j.subscribeAll()
			// Replayed batches start mid-stream: the window for that
			// opens when the consumers exist (elect opened one too).
			j.b.imp.resync(time.Now())
			if err == nil {
				if !resumed {
					j.b.flush(FlushTakeover)
				}
				return
			}
			if j.b.lim.allow() {
				j.b.log.Warn("bridge: JetStream subscribe failed; retrying", "err", err)
			}
			select {
			case <-j.b.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

// subscribe (re)creates the consumer of remote. Caller holds mu.
func (j *jetStream) subscribe(remote string) (resumed bool, err error) {
	stream := streamName(j.b.cfg.SubjectPrefix, remote)
	durable := j.b.cfg.JetStream.Durable + "_" + remote
	cc := &nats.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     nats.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 1 << 16,
		DeliverPolicy: nats.DeliverNewPolicy,
	}
	info, err := j.js.ConsumerInfo(stream, durable)
	switch {
	case err == nil:
		cc.DeliverPolicy = nats.DeliverByStartSequencePolicy
		cc.OptStartSeq = info.AckFloor.Stream + 1
		si, err := j.js.StreamInfo(stream)
		if err != nil {
			return false, fmt.Errorf("bridge: JetStream stream %s: %w", stream, err)
		}
		if err := j.js.DeleteConsumer(stream, durable); err != nil && !errors.Is(err, nats.ErrConsumerNotFound) {
			return false, fmt.Errorf("bridge: JetStream consumer %s: %w", durable, err)
		}
		// Resumed, unless batches past the ack floor have already left
		// the stream.
		resumed = si.State.Msgs == 0 || si.State.FirstSeq <= cc.OptStartSeq
	case !errors.Is(err, nats.ErrConsumerNotFound):
		return false, fmt.Errorf("bridge: JetStream consumer %s: %w", durable, err)
	}
	if old := j.subs[remote]; old != nil {
		old.Unsubscribe() // a plain subscription: the consumer is ours to manage
	}
	cc.DeliverSubject = j.b.nc.NewInbox()
	sub, err := j.b.nc.Subscribe(cc.DeliverSubject, func(m *nats.Msg) {
		if j.b.closed.Load() {
			return // not acknowledged: the next importer gets it
		}
		j.b.imp.handle(m.Subject, m.Data)
		if j.b.closed.Load() {
			return // its publishing may have been cut short by Close
		}
		m.Ack() // a bad batch stays bad: acknowledged either way
	})
	if err == nil {
		err = sub.SetPendingLimits(-1, 256<<20)
	}
	if err != nil {
		return false, fmt.Errorf("bridge: subscribe %s: %w", cc.DeliverSubject, err)
	}
	j.subs[remote] = sub
	if _, err := j.js.AddConsumer(stream, cc); err != nil {
		return false, fmt.Errorf("bridge: create JetStream consumer %s: %w", durable, err)
	}
	return resumed, nil
}

// reconnected makes the importer resume its consumers: deliveries to a
// lost connection are not acknowledged, and a recreated consumer sends
// them again at once.
func (j *jetStream) reconnected() {
	if j.b.leader.Load() {
		j.b.imp.resync(time.Now())
		j.lead()
	}
}

// publish sends one batch into this mesh's stream. The message keeps its
// own copy of the batch: the future may outlive the buffer (one
// allocation per batch, never per invalidation).
func (j *jetStream) publish(data []byte, seq uint64) error {
	m := nats.NewMsg(j.b.cfg.invSubject)
	m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s-%016x-%d-%d", j.b.cfg.Name, j.b.node.ID(), j.b.node.Epoch(), seq))
	m.Data = append([]byte(nil), data...)
	_, err := j.js.PublishMsgAsync(m)
	return err
}

func (j *jetStream) close() {
	j.closed.Store(true)
	select {
	case <-j.js.PublishAsyncComplete():
	case <-time.After(2 * time.Second):
	}
	j.wg.Wait()
}
