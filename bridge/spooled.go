package bridge

// Spooled routes: at-least-once from a source that cannot redeliver.
//
// ZeroMQ cannot take a message back, so a route from it cannot hand a
// failed message back for redelivery. A spooled route instead appends
// every message it takes to a durable spool (package spool) before it
// counts it as received: that commit is the route's "ack" to its source.
// A second goroutine sends from the spool to the sink, in spool order,
// with at most Options.MaxBatch messages unconfirmed (to a
// transport.Sender in batches of a quarter of that, so confirmations
// overlap), and removes messages once the sink confirmed them. A sink
// failure pauses the sender (backoff) and sends again from the oldest
// unconfirmed message, with everything after it: the sink sees the
// messages in order as long as it keeps the order of what it was sent
// (AMQP's Sender sends the unconfirmed again before any later batch),
// and at most MaxBatch of them twice;
// a restart of the bridge, even after SIGKILL, first sends what the
// spool held. What ZeroMQ delivered to nobody (published while the bridge
// was down, or lost in ZeroMQ's own queues when the bridge died) is out
// of reach of any spool.
//
// Loop prevention, deduplication and the signature policy run before a
// message is spooled; the spool holds the message as it will be
// published (headers stamped, re-signed where the route re-signs).

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/spool"
	"github.com/gofedmsg/fedmsg/transport"
)

// DefaultSpoolDir is where spools go when neither bridge.spool_dir nor
// spool_dir is set and systemd gave no STATE_DIRECTORY.
const DefaultSpoolDir = "/var/lib/fedmsg/spool"

// SpoolOptions configure the spools of routes that need one (the keys of
// the bridge section: spool_dir, spool_max_bytes, spool_full).
type SpoolOptions struct {
	// Dir holds one file per spooled route, <route>.spool. Empty: no
	// directory could be determined, and a route that needs a spool is
	// refused.
	Dir string
	// MaxBytes bounds each route's spool; 0 means spool.DefaultMaxBytes.
	MaxBytes int64
	// Full is the policy of a full spool; "" means spool.Block.
	Full spool.Policy
}

// SpoolDirFromEnv is the default spool directory: $STATE_DIRECTORY/spool
// when systemd set StateDirectory= (the first one when it lists several),
// else DefaultSpoolDir.
func SpoolDirFromEnv(getenv func(string) string) string {
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); d != "" {
		return filepath.Join(d, "spool")
	}
	return DefaultSpoolDir
}

// SpoolFile is the spool file of route in dir. A route name is free text:
// anything but letters, digits, '.', '-' and '_' becomes '_', and then a
// hash of the name keeps two such names apart.
func SpoolFile(dir, route string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, route)
	if safe != route || strings.HasPrefix(safe, ".") {
		h := fnv.New32a()
		h.Write([]byte(route))
		safe = fmt.Sprintf("%s-%08x", safe, h.Sum32())
	}
	return filepath.Join(dir, safe+".spool")
}

// needsSpool: an at-least-once route whose source cannot redeliver,
// unless the route says spool: false; or any at-least-once route that
// says spool: true.
func needsSpool(rc RouteConfig, src transport.Transport) bool {
	if rc.Delivery != AtLeastOnce {
		return false
	}
	if rc.Spool != nil {
		return *rc.Spool
	}
	return !src.Capabilities().Redelivery
}

// openSpool opens r's spool file.
func (b *Bridge) openSpool(r *route) error {
	o := b.opts.Spool
	sp, err := spool.Open(spool.Options{
		Path:        SpoolFile(o.Dir, r.cfg.Name),
		MaxBytes:    o.MaxBytes,
		Full:        o.Full,
		Logger:      b.log.With("route", r.cfg.Name),
		MaxBytesKey: "bridge.spool_max_bytes",
		FullKey:     "bridge.spool_full",
	})
	if err != nil {
		return fmt.Errorf("%w: route %q: at-least-once from %q needs its spool (directory: key \"bridge.spool_dir\"): %w",
			ErrGuaranteeUnavailable, r.cfg.Name, r.cfg.From, err)
	}
	r.spool = sp
	return nil
}

// closeSpools closes every route's spool, once.
func (b *Bridge) closeSpools() {
	b.spoolsOnce.Do(func() {
		for _, r := range b.routes {
			if r.spool == nil {
				continue
			}
			ctx, cancel := b.settleCtx()
			if err := r.spool.Close(ctx); err != nil {
				b.log.Warn("bridge: closing spool", "route", r.cfg.Name, "err", err)
			}
			cancel()
		}
	})
}

// SpoolStats returns the spool counters of every spooled route, by route
// name.
func (b *Bridge) SpoolStats() map[string]spool.Stats {
	out := map[string]spool.Stats{}
	for _, r := range b.routes {
		if r.spool != nil {
			out[r.cfg.Name] = r.spool.Stats()
		}
	}
	return out
}

// runSpooled runs a spooled route: intake from the source into the spool
// here, and a sender from the spool to the sink.
func (b *Bridge) runSpooled(ctx context.Context, r *route, src <-chan *transport.Delivery) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	intakeDone := make(chan struct{})
	sendErr := make(chan error, 1)
	go func() {
		err := b.sendSpooled(rctx, r, intakeDone)
		if err != nil {
			cancel() // the intake stops too: the route is over
		}
		sendErr <- err
	}()
	ierr := b.intake(rctx, r, src)
	if ierr != nil {
		// What the sender has in flight stays in the spool.
		cancel()
	}
	close(intakeDone)
	serr := <-sendErr
	if ierr != nil {
		return ierr
	}
	return serr
}

// intake takes deliveries, as runRoute does, and appends the ones to
// forward to the spool, a batch of what is waiting at a time.
func (b *Bridge) intake(ctx context.Context, r *route, src <-chan *transport.Delivery) error {
	// A Block spool that is full makes Append wait; a stop must not.
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-actx.Done():
		}
	}()
	for {
		var first *transport.Delivery
		select {
		case <-b.stop:
			return nil
		case <-ctx.Done():
			return nil
		case d, ok := <-src:
			if !ok {
				return b.sourceEnded(ctx, r)
			}
			first = d
		}
		batch, ended := b.takeWaiting(ctx, r, src, first, make([]outgoing, 0, 16), b.opts.MaxBatch)
		if len(batch) > 0 {
			if err := b.spoolBatch(actx, r, batch); err != nil {
				return err
			}
		}
		if ended {
			return b.sourceEnded(ctx, r)
		}
	}
}

// spoolBatch appends batch to the route's spool and settles its
// deliveries. Only a failure of the spool itself (the disk) ends the
// route: a bridge that cannot keep its promise should stop loudly.
func (b *Bridge) spoolBatch(ctx context.Context, r *route, batch []outgoing) error {
	err := r.spool.Append(ctx, messagesOf(batch)...)
	if err != nil && len(batch) > 1 && errors.Is(err, spool.ErrTooLarge) {
		// Together too large for the spool: one by one, so that only a
		// message larger than the spool itself is refused.
		for i := range batch {
			if err := b.spoolBatch(ctx, r, batch[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	// Spooled is as good as forwarded for the windows: the message will
	// be published, and its echo or a duplicate must be recognised from
	// now on.
	b.settleWindows(r, batch, err == nil)
	n := uint64(len(batch))
	switch {
	case err == nil:
		b.ackAll(r, batch)
		return nil
	case errors.Is(err, spool.ErrTooLarge):
		b.drop(r, batch[0].d, DropSinkRejected, err)
		return nil
	case ctx.Err() != nil:
		// Stopped while a full spool (spool_full: block) kept these
		// out; the source cannot take them back.
		r.stats.dropped[DropSinkError].Add(n)
		b.log.Warn("bridge: stopped while the spool was full: messages not spooled are lost", "route", r.cfg.Name,
			"messages", n, "first_topic", batch[0].msg.Topic, "first_msg_id", batch[0].id, "err", err)
		b.nackAll(r, batch, err)
		return nil
	default:
		r.stats.dropped[DropSinkError].Add(n)
		b.nackAll(r, batch, err)
		return fmt.Errorf("bridge: route %q: %w", r.cfg.Name, err)
	}
}

// spooledBatch is spool entries sent to the sink and their outcome.
type spooledBatch struct {
	entries []spool.Entry
	pending *transport.Pending
}

// sendSpooled publishes the spool's messages in order until intakeDone is
// closed, then settles what is in flight and returns. Only a condition
// that ends the route is returned.
func (b *Bridge) sendSpooled(ctx context.Context, r *route, intakeDone <-chan struct{}) error {
	sp := r.spool
	sender, _ := r.dst.(transport.Sender)
	var (
		flight   []spooledBatch // oldest first
		inFlight int            // messages in flight
		after    uint64         // the last seq sent
		single   uint64         // up to this seq, send one message per batch
		failures int            // in a row, for the backoff (r.failures is the intake's)
	)
	// restart forgets what is in flight, once it is settled, and sends
	// again from first: order over duplicates (at most MaxBatch).
	restart := func(first uint64) {
		for _, f := range flight {
			<-f.pending.Done()
		}
		flight, inFlight, after = nil, 0, first-1
	}
	for {
		// Confirmed batches at the front are removed together: one
		// spool commit for all of them.
		var confirmed []spool.Entry
		for len(flight) > 0 && done(flight[0].pending) {
			sb := flight[0]
			flight = flight[1:]
			inFlight -= len(sb.entries)
			err := sb.pending.Err()
			if err == nil {
				confirmed = append(confirmed, sb.entries...)
				failures = 0
				continue
			}
			b.ackSpooled(r, confirmed, dropNone)
			confirmed = nil
			switch {
			case errors.Is(err, transport.ErrClosed):
				return fmt.Errorf("%w: route %q: sink %q: %w", ErrSinkClosed, r.cfg.Name, r.cfg.To, err)
			case ctx.Err() != nil:
				return nil // stopping: the spool keeps them
			case errors.Is(err, transport.ErrBadMessage) || errors.Is(err, transport.ErrPermanent):
				if len(sb.entries) == 1 {
					b.ackSpooled(r, sb.entries, DropSinkRejected)
					b.log.Warn("bridge: message dropped", "route", r.cfg.Name, "reason", DropSinkRejected.String(),
						"topic", sb.entries[0].Msg.Topic, "msg_id", msgID(sb.entries[0].Msg.ID, sb.entries[0].Msg.Body), "err", err)
					continue
				}
				// One message spoiled the batch: again one by one, so
				// that only that one is dropped.
				single = sb.entries[len(sb.entries)-1].Seq
				restart(sb.entries[0].Seq)
				continue
			}
			n := len(sb.entries) + inFlight
			restart(sb.entries[0].Seq)
			r.stats.retried.Add(uint64(n))
			pause := retry.Exponential(failures, b.opts.RetryMin, b.opts.RetryMax)
			failures++
			m := sb.entries[0].Msg
			b.log.Warn("bridge: forwarding failed, kept in the spool to send again", "route", r.cfg.Name, "messages", n,
				"first_topic", m.Topic, "first_msg_id", msgID(m.ID, m.Body), "retry_in", pause, "err", err)
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-intakeDone:
			case <-ctx.Done():
			}
			t.Stop()
		}
		b.ackSpooled(r, confirmed, dropNone)
		select {
		case <-intakeDone:
			// Stopping: settle what was sent, in order; the rest stays
			// spooled for the next run.
			for _, sb := range flight {
				<-sb.pending.Done()
				if sb.pending.Err() != nil {
					return nil
				}
				b.ackSpooled(r, sb.entries, dropNone)
			}
			return nil
		default:
		}
		var wake <-chan struct{}
		if room := b.opts.MaxBatch - inFlight; room > 0 {
			wake = sp.Appended() // before reading: no commit is missed
			switch {
			case after < single:
				room = 1
			case sender != nil:
				// Several smaller batches rather than one: the broker
				// confirms the first while the others are on their
				// way, and the spool commit that removes it does not
				// leave the broker idle.
				room = min(room, max(1, b.opts.MaxBatch/4))
			}
			entries, err := sp.TryRead(after, room)
			if err != nil {
				return fmt.Errorf("bridge: route %q: %w", r.cfg.Name, err)
			}
			if len(entries) > 0 {
				after = entries[len(entries)-1].Seq
				flight = append(flight, b.sendEntries(ctx, r, sender, entries))
				inFlight += len(entries)
				continue
			}
		}
		var oldest <-chan struct{}
		if len(flight) > 0 {
			oldest = flight[0].pending.Done()
		}
		select {
		case <-oldest:
		case <-wake:
		case <-intakeDone:
		case <-ctx.Done():
			if len(flight) == 0 {
				return nil
			}
			// The sink resolves what is in flight once ctx ended;
			// waiting for it here keeps this loop from spinning.
			<-oldest
		}
	}
}

func done(p *transport.Pending) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// sendEntries sends entries to the sink: into flight with a Sender,
// else published at once.
func (b *Bridge) sendEntries(ctx context.Context, r *route, sender transport.Sender, entries []spool.Entry) spooledBatch {
	msgs := make([]*transport.Message, len(entries))
	recovered := r.spool.Stats().RecoveredUpTo
	for i, e := range entries {
		msgs[i] = e.Msg
		if e.Seq <= recovered {
			// Left by an earlier run, which had them in its windows:
			// so must this one, or their echo from the sink (stamped
			// with the earlier run's bridge id when that id was not
			// configured) would come back as new.
			if id := msgID(e.Msg.ID, e.Msg.Body); id != "" {
				r.seen.add(id, true)
				b.echoes.add(echoKey(r.cfg.To, id), true)
			}
		}
	}
	if sender != nil {
		p, err := sender.Send(ctx, msgs...)
		if err != nil {
			p = transport.NewPending()
			p.Resolve(err)
		}
		return spooledBatch{entries, p}
	}
	p := transport.NewPending()
	p.Resolve(r.dst.Publish(ctx, msgs...))
	return spooledBatch{entries, p}
}

// ackSpooled removes entries from the spool once the sink settled them:
// counted as forwarded, or as dropped for reason when not dropNone. A
// failed removal only means the messages are sent again after a restart.
func (b *Bridge) ackSpooled(r *route, entries []spool.Entry, reason DropReason) {
	if len(entries) == 0 {
		return
	}
	seqs := make([]uint64, len(entries))
	for i, e := range entries {
		seqs[i] = e.Seq
	}
	if reason == dropNone {
		r.stats.forwarded.Add(uint64(len(entries)))
	} else {
		r.stats.dropped[reason].Add(uint64(len(entries)))
	}
	ctx, cancel := b.settleCtx()
	defer cancel()
	if err := r.spool.Ack(ctx, seqs...); err != nil {
		r.stats.settleErrors.Add(uint64(len(entries)))
		b.log.Warn("bridge: removing sent messages from the spool failed: they will be sent again after a restart",
			"route", r.cfg.Name, "messages", len(entries), "err", err)
	}
}
