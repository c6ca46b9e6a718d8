package fedmsg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofedmsg/fedmsg/bridge"
	"github.com/gofedmsg/fedmsg/config"
	"github.com/gofedmsg/fedmsg/internal/retry"
	"github.com/gofedmsg/fedmsg/spool"
	"github.com/gofedmsg/fedmsg/transport"
)

// Publishing through a broker with a spool (spool_dir set, zmq_enabled
// false): Publish appends the message to a durable spool and returns once
// it is on disk; a goroutine sends the spool to the broker in order and
// removes each message once the broker confirmed it. A broker that is down
// delays messages instead of failing Publish, and a process that stops or
// dies before the broker came back leaves them in the spool, where the
// next process with the same configuration sends them first.

// spoolSendBatch is the most messages sent to the broker in one Publish.
const spoolSendBatch = 256

// Pauses of the sender after a failed Publish, doubling while failures
// repeat.
const (
	spoolRetryMin = 100 * time.Millisecond
	spoolRetryMax = 5 * time.Second
)

// spooledPublisher is the publishing side of a broker transport with a
// spool in front. Subscribe and Capabilities are the broker's.
type spooledPublisher struct {
	transport.Transport // the broker
	sp                  *spool.Spool
	log                 *slog.Logger

	cancel  context.CancelFunc
	done    chan struct{} // closed when the sender returned
	dropped atomic.Uint64 // messages the broker refused (bad message)

	closeOnce sync.Once
	closeErr  error
}

// spoolFile is the library's spool file for the publisher named name.
func spoolFile(dir, name string) string {
	if name == "" {
		name = "default"
	}
	return bridge.SpoolFile(dir, "publish-"+name)
}

func newSpooledPublisher(broker transport.Transport, cfg *config.Config, name string, log *slog.Logger) (*spooledPublisher, error) {
	sp, err := spool.Open(spool.Options{
		Path:     spoolFile(cfg.SpoolDir, name),
		MaxBytes: int64(cfg.SpoolMaxBytes),
		Full:     spool.Policy(cfg.SpoolFull),
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("fedmsg: spool_dir: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &spooledPublisher{Transport: broker, sp: sp, log: log, cancel: cancel, done: make(chan struct{})}
	go p.send(ctx)
	return p, nil
}

// Publish appends msgs to the spool; nil means they are on disk and will
// be sent. With spool_full: block it waits, within ctx, for room.
func (p *spooledPublisher) Publish(ctx context.Context, msgs ...*transport.Message) error {
	if err := p.sp.Append(ctx, msgs...); err != nil {
		return fmt.Errorf("fedmsg: publish: %w", err)
	}
	return nil
}

// send publishes the spool to the broker, oldest first, until ctx ends.
func (p *spooledPublisher) send(ctx context.Context) {
	defer close(p.done)
	failures := 0
	for {
		entries, err := p.sp.Read(ctx, 0, spoolSendBatch)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("spool: reading failed; publishing stopped", "spool", p.sp.Path(), "err", err)
			}
			return
		}
		err = p.publish(ctx, entries)
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return // closing: what was not confirmed stays spooled
		case errors.Is(err, transport.ErrClosed):
			p.log.Error("spool: the broker transport was closed; the spool keeps the rest for the next run", "spool", p.sp.Path(), "err", err)
			return
		default:
			pause := retry.Jitter(retry.Exponential(failures, spoolRetryMin, spoolRetryMax))
			failures++
			p.log.Warn("spool: publishing to the broker failed; kept in the spool to send again", "spool", p.sp.Path(),
				"messages", len(entries), "retry_in", pause, "err", err)
			if !retry.Sleep(ctx, pause) {
				return
			}
		}
	}
}

// publish sends entries in one Publish and removes them once confirmed.
// A message the broker refuses for its shape is dropped alone (logged),
// so that it does not block the spool for ever.
func (p *spooledPublisher) publish(ctx context.Context, entries []spool.Entry) error {
	msgs := make([]*transport.Message, len(entries))
	for i, e := range entries {
		msgs[i] = e.Msg
	}
	err := p.Transport.Publish(ctx, msgs...)
	if err != nil && (errors.Is(err, transport.ErrBadMessage) || errors.Is(err, transport.ErrPermanent)) {
		if len(entries) > 1 {
			for i := range entries {
				if err := p.publish(ctx, entries[i:i+1]); err != nil {
					return err
				}
			}
			return nil
		}
		p.dropped.Add(1)
		p.log.Warn("spool: the broker refused a message; dropped", "topic", msgs[0].Topic, "msg_id", msgs[0].ID, "err", err)
		err = nil
	}
	if err != nil {
		return err
	}
	seqs := make([]uint64, len(entries))
	for i, e := range entries {
		seqs[i] = e.Seq
	}
	// The removal is not tied to ctx: a message confirmed while closing
	// must not be sent again by the next run.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.sp.Ack(actx, seqs...); err != nil {
		p.log.Warn("spool: removing sent messages failed: they will be sent again", "spool", p.sp.Path(), "err", err)
	}
	return nil
}

// Close sends what the spool holds while ctx allows (the broker may be
// down: then it stays spooled for the next run), stops the sender,
// closes the spool and then the broker.
func (p *spooledPublisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		// Only a bounded Close waits for the broker: one without a
		// deadline (an error path) must not hang on a broker that is down.
		_, bounded := ctx.Deadline()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	flush:
		for bounded && p.sp.Stats().Depth > 0 {
			select {
			case <-p.done:
				break flush
			case <-ctx.Done():
				break flush
			case <-tick.C:
			}
		}
		if st := p.sp.Stats(); st.Depth > 0 {
			p.log.Warn("spool: messages not yet confirmed by the broker stay in the spool for the next run",
				"spool", p.sp.Path(), "messages", st.Depth)
		}
		p.cancel()
		select {
		case <-p.done:
		case <-ctx.Done():
		}
		// The spool closes even when ctx is over: its file must not be
		// left half-used, and an in-progress commit is short.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		p.closeErr = errors.Join(p.sp.Close(cctx), p.Transport.Close(ctx))
	})
	return p.closeErr
}

// SpoolStats reports the publishing spool's counters; ok is false when
// the context has no spool (spool_dir unset, or ZeroMQ publishing).
func (c *Context) SpoolStats() (st spool.Stats, ok bool) {
	p, _ := c.pub.(*spooledPublisher)
	if p == nil {
		return st, false
	}
	st = p.sp.Stats()
	st.Dropped += p.dropped.Load()
	return st, true
}
