// Package brokerstats is what the broker transports (STOMP, AMQP) count
// for monitoring: connections made, and the time each confirmed publish
// took, told to an observer. The metrics endpoint reads and observes
// them; the transports need no metrics library.
package brokerstats

import (
	"sync/atomic"
	"time"
)

// Observer is told how long each confirmed publish took, from the call to
// the broker's last confirmation (or receipt), and for how many messages.
type Observer interface {
	ObservePublish(d time.Duration, msgs int)
}

// Counters are one transport's. The zero value is ready; safe for
// concurrent use.
type Counters struct {
	connects atomic.Uint64
	observer atomic.Pointer[Observer]
}

// CountConnection counts a connection the transport established.
func (c *Counters) CountConnection() { c.connects.Add(1) }

// Reconnects is how many connections were established after the first.
func (c *Counters) Reconnects() uint64 {
	if n := c.connects.Load(); n > 1 {
		return n - 1
	}
	return 0
}

// SetObserver makes every later confirmed publish be reported to obs; nil
// stops reporting.
func (c *Counters) SetObserver(obs Observer) {
	if obs == nil {
		c.observer.Store(nil)
		return
	}
	c.observer.Store(&obs)
}

// Timed reports a publish that started at start to the observer, when it
// succeeded, and returns err unchanged so that it can wrap a return value.
func (c *Counters) Timed(start time.Time, msgs int, err error) error {
	if err == nil {
		if p := c.observer.Load(); p != nil {
			(*p).ObservePublish(time.Since(start), msgs)
		}
	}
	return err
}
