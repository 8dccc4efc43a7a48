package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vmglue/vmglue/eventbus"
)

// bookkeepingTimeout bounds a registry write or dead-letter publish that must
// happen even when the converge's context is cancelled.
const bookkeepingTimeout = 10 * time.Second

// receive is the consumer callback. It never blocks on a converge: it puts
// the message in its VM's queue and hands the VM to a drainer.
func (r *Runner) receive(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		r.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without jetstream metadata")
		return
	}
	if w := msg.Headers().Get(HeaderForWorker); w != "" && w != r.name {
		if err := msg.Ack(); err != nil {
			r.log.Warn().Err(err).Uint64("seq", meta.Sequence.Stream).Msg("ack of an event for another worker")
			return // redelivered, skipped again
		}
		r.m.events.WithLabelValues(ResultSkipped).Inc()
		return
	}
	ev, err := eventbus.Unmarshal(msg.Data())
	if err != nil {
		j := &job{msg: msg, seq: meta.Sequence.Stream}
		reason := ReasonInvalid
		if errors.Is(err, eventbus.ErrUnknownVersion) {
			reason = ReasonVersion
		}
		r.deadLetter(j, reason, err, r.log.With().Str("subject", msg.Subject()).Logger())
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		_ = msg.Nak()
		return
	}
	if j, ok := r.held[meta.Sequence.Stream]; ok {
		// A redelivery of a message we hold (a keep-alive was lost): settle
		// the newest delivery, converge once.
		j.msg = msg
		return
	}
	j := &job{msg: msg, seq: meta.Sequence.Stream, key: ev.Data.Key(), ev: ev,
		verify: msg.Headers().Get(eventbus.HeaderReplay) != ""}
	r.held[j.seq] = j
	r.enqueueLocked(j)
}

// enqueueLocked appends j to its VM's queue and, unless the VM is being
// drained, hands its key to a drainer: one of the Concurrency long-lived
// ones (drainers), or a goroutine of its own when they all have keys
// waiting. Callers hold r.mu.
func (r *Runner) enqueueLocked(j *job) {
	j.timer = nil
	r.queues[j.key] = append(r.queues[j.key], j)
	if !r.active[j.key] {
		r.active[j.key] = true
		select {
		case r.ready <- j.key:
		default:
			go r.drainKey(j.key)
		}
	}
}

// drainers runs Concurrency goroutines that drain the VMs whose keys
// enqueueLocked hands them, until stop. A converge's call chain (JSON,
// the NATS client) grows a goroutine's stack to tens of kilobytes: a
// goroutine per VM grew it anew for every event.
func (r *Runner) drainers(wg *sync.WaitGroup) {
	for range r.opts.Concurrency {
		wg.Go(func() {
			for {
				select {
				case <-r.stopCh:
					return
				case key := <-r.ready:
					r.drainKey(key)
				}
			}
		})
	}
}

// drainKey converges the queued events of one VM one after the other, each
// in one of the Concurrency slots. One drainKey runs per VM key at a time:
// that is the in-process half of the per-VM serialisation.
func (r *Runner) drainKey(key string) {
	for {
		r.mu.Lock()
		if len(r.queues[key]) == 0 || r.stopping {
			delete(r.queues, key)
			delete(r.active, key)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		select {
		case r.sem <- struct{}{}:
		case <-r.stopCh:
			r.mu.Lock()
			delete(r.active, key)
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		if r.stopping {
			delete(r.active, key)
			r.mu.Unlock()
			<-r.sem
			return
		}
		j := r.queues[key][0]
		r.queues[key] = r.queues[key][1:]
		r.running.Add(1)
		r.mu.Unlock()
		r.handle(j)
		r.running.Done()
		<-r.sem
	}
}

// msgOf returns the newest delivery of j.
func (r *Runner) msgOf(j *job) jetstream.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return j.msg
}

// release forgets j and settles its newest delivery with fn.
func (r *Runner) release(j *job, fn func(jetstream.Msg) error) error {
	r.mu.Lock()
	if r.held[j.seq] == j {
		delete(r.held, j.seq)
	}
	msg := j.msg
	r.mu.Unlock()
	return fn(msg)
}

// park keeps j un-acked (alive through keepAlive) and queues it again after
// d. It does not consume a delivery: requeues and busy leases are not
// failures.
func (r *Runner) park(j *job, d time.Duration, wait *orderWait) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping || r.held[j.seq] != j {
		return // drain naks what is held
	}
	j.wait = wait
	j.timer = time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.stopping && r.held[j.seq] == j {
			r.enqueueLocked(j)
		}
	})
}

// bookkeeping returns a context for writes that must outlive a cancelled
// converge (the registry record after Apply, a dead letter).
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
}
