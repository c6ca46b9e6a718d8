package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofedmsg/fedmsg/internal/retry"
)

// Defaults of Options.RedeliveryDelay and Options.MaxRedeliveryDelay.
const (
	DefaultRedeliveryDelay    = time.Second
	DefaultMaxRedeliveryDelay = time.Minute
)

// redelivery paces the hand-back of failed messages on a transport that
// redelivers (a STOMP or AMQP queue). Nacked at once, a message a handler
// cannot take comes straight back and fails again, as fast as the broker
// and the handler allow: a hot loop against whatever the handler talks
// to, and a flood of warnings. Held back instead, it waits a pause that
// doubles while failures repeat (reset by any success), still counted
// against the broker's prefetch, so the broker slows down too. The
// consumer goes on with other messages meanwhile.
type redelivery struct {
	min, max time.Duration
	failures atomic.Int64 // consecutive failed settlements
	held     sync.WaitGroup
	flush    chan struct{} // closed when the hub stops: what is held goes back at once
	once     sync.Once
}

func newRedelivery(min, max time.Duration) *redelivery {
	return &redelivery{min: min, max: max, flush: make(chan struct{})}
}

// succeeded resets the pause.
func (r *redelivery) succeeded() {
	if r != nil {
		r.failures.Store(0)
	}
}

// handBack Nacks d with cause after the current pause (at once once the
// hub stops).
func (r *redelivery) handBack(ctx context.Context, s *settlement, cause error) {
	pause := retry.Exponential(int(r.failures.Add(1)-1), r.min, r.max)
	r.held.Add(1)
	go func() {
		defer r.held.Done()
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.flush:
		}
		settle(ctx, s.d, cause, s.log)
	}()
}

// stop hands back what is held and waits until it has been.
func (r *redelivery) stop() {
	if r == nil {
		return
	}
	r.once.Do(func() { close(r.flush) })
	r.held.Wait()
}
