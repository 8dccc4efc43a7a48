package dns

import (
	"context"
	"errors"
	"time"

	mdns "github.com/miekg/dns"
)

// maxInFlight bounds the UPDATE messages one zone's batcher has on the wire
// at once. While they are out, new parts gather into the next batch: BIND
// applies the updates of a zone one after the other anyway, so under a
// burst the batches grow with the server's latency instead of queueing
// there as many small messages (each costs the server a journal write).
const maxInFlight = 1

// errClosed is returned to parts still waiting when the target closes.
var errClosed = errors.New("dns target closed")

// part is one caller's share of an UPDATE for one zone: prerequisites and
// updates for names no other part of the same message touches.
type part struct {
	prereq []mdns.RR
	update []mdns.RR
	names  []string
	alone  bool            // send as its own message, now
	res    chan error      // buffered, receives exactly one result
	ctx    context.Context // the caller's: checked right before each send
}

func (p *part) size() (records, bytes int) {
	for _, l := range [][]mdns.RR{p.prereq, p.update} {
		for _, rr := range l {
			bytes += mdns.Len(rr)
		}
		records += len(l)
	}
	return records, bytes
}

// batcher gathers the parts of concurrent Apply calls for one zone and sends
// them as few UPDATE messages: after the window since the first part, when
// the batch reaches max_records or max_bytes, or before a part that touches
// a name already in the batch. A batch that is due while maxInFlight
// messages are out waits for one of them to return (and the open batch
// keeps gathering parts meanwhile).
type batcher struct {
	t    *Target
	zone string
	in   chan *part
	done chan struct{} // a message sent by send returned
}

func newBatcher(t *Target, zone string) *batcher {
	return &batcher{t: t, zone: zone, in: make(chan *part, 256), done: make(chan struct{}, maxInFlight)}
}

// submit hands p to the batcher and waits for its result or ctx.
func (b *batcher) submit(ctx context.Context, p *part) error {
	p.res, p.ctx = make(chan error, 1), ctx
	select {
	case b.in <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.t.ctx.Done():
		return errClosed
	}
	select {
	case err := <-p.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.t.ctx.Done():
		return errClosed
	}
}

// gathering is the state of a batcher's run loop: the open batch, the
// closed ones waiting for a free slot (oldest first), and the messages out.
type gathering struct {
	batch          []*part
	names          map[string]bool
	records, bytes int
	closed         [][]*part
	due            bool // the open batch's window has passed
	inFlight       int
}

func (b *batcher) run(ctx context.Context) {
	g := gathering{names: map[string]bool{}}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// close ends the open batch: it is sent once a slot is free.
	closeBatch := func() {
		timer.Stop()
		if len(g.batch) > 0 {
			g.closed = append(g.closed, g.batch)
		}
		g.batch, g.names, g.records, g.bytes, g.due = nil, map[string]bool{}, 0, 0, false
	}
	// pump sends the closed batches while slots are free.
	pump := func() {
		for g.inFlight < maxInFlight && len(g.closed) > 0 {
			g.inFlight++
			go b.send(g.closed[0])
			g.closed = g.closed[1:]
		}
	}
	for {
		select {
		case <-ctx.Done():
			closeBatch()
			for _, batch := range g.closed {
				for _, p := range batch {
					p.res <- errClosed
				}
			}
			for ; g.inFlight > 0; g.inFlight-- { // wait for the messages in flight
				<-b.done
			}
			return
		case <-b.done:
			g.inFlight--
			if g.due && len(g.closed) == 0 {
				closeBatch()
			}
		case p := <-b.in:
			if p.alone {
				closeBatch()
				g.closed = append(g.closed, []*part{p})
				break
			}
			r, n := p.size()
			overlap := false
			for _, name := range p.names {
				overlap = overlap || g.names[name]
			}
			if overlap || g.records+r > b.t.cfg.Batch.MaxRecords || g.bytes+n > b.t.cfg.Batch.MaxBytes {
				closeBatch()
			}
			if len(g.batch) == 0 {
				timer.Reset(b.t.cfg.Batch.Window)
			}
			g.batch = append(g.batch, p)
			g.records, g.bytes = g.records+r, g.bytes+n
			for _, name := range p.names {
				g.names[name] = true
			}
			if g.records >= b.t.cfg.Batch.MaxRecords || g.bytes >= b.t.cfg.Batch.MaxBytes {
				closeBatch()
			}
		case <-timer.C:
			g.due = true
			if g.inFlight < maxInFlight {
				closeBatch()
			}
		}
		pump()
	}
}

// send sends the parts as one UPDATE and hands out the result.
func (b *batcher) send(parts []*part) {
	defer func() { b.done <- struct{}{} }()
	b.deliver(parts)
}

// deliver sends parts as one message. Prerequisites are all-or-nothing per
// message: when a batch fails on one (or on FORMERR/NOTZONE, which one
// part's records may cause), it is split in halves and each half is sent
// again, down to the single parts at fault, so one conflicting VM never
// fails the others and costs about 2·log2(n) extra messages.
//
// A part whose caller's context is done, or past its deadline, is not sent:
// the UPDATE is sent with the target's own context, so without this check
// a cancelled converge (its lease lost to another instance) would still
// change the zone. The deadline is checked against the clock, not only
// through Done: after a pause of the process, the timer that would cancel
// the context may not have run yet.
//
// The parts are checked again before each further server: failing over
// after a timeout may come past a caller's lease.
func (b *batcher) deliver(parts []*part) {
	var err error
	for _, server := range b.t.servers[b.zone] {
		if parts = live(parts); len(parts) == 0 {
			return
		}
		m := new(mdns.Msg)
		m.SetUpdate(b.zone)
		for _, p := range parts {
			m.Answer = append(m.Answer, p.prereq...)
			m.Ns = append(m.Ns, p.update...)
		}
		if err = b.t.updateAt(b.t.ctx, b.zone, server, m); !b.t.failover(b.t.ctx, b.zone, server, err) {
			break
		}
	}
	var pe *prereqError
	if len(parts) > 1 && (errors.As(err, &pe) || isPartSpecific(err)) {
		b.deliver(parts[:len(parts)/2])
		b.deliver(parts[len(parts)/2:])
		return
	}
	for _, p := range parts {
		p.res <- err
	}
}

// live hands their caller's error to the parts whose context is done or
// past its deadline, and returns the others.
func live(parts []*part) []*part {
	out := parts[:0:0]
	for _, p := range parts {
		if err := expired(p.ctx); err != nil {
			p.res <- err
			continue
		}
		out = append(out, p)
	}
	return out
}

// expired is ctx's error, or context.DeadlineExceeded once its deadline
// has passed even if its timer has not fired yet.
func expired(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// isPartSpecific reports an rcode one caller's records may cause alone.
func isPartSpecific(err error) bool {
	var re *rcodeError
	return errors.As(err, &re) && (re.rcode == mdns.RcodeFormatError || re.rcode == mdns.RcodeNotZone)
}
