package stomp

import (
	"sync/atomic"
	"time"
)

// PublishObserver is told how long each confirmed publish took, from the
// Publish call to the last broker receipt, and for how many messages.
// The metrics endpoint implements it; this package needs no metrics
// library.
type PublishObserver interface {
	ObservePublish(d time.Duration, msgs int)
}

// opsState is what the transport counts for monitoring.
type opsState struct {
	connects atomic.Uint64
	observer atomic.Pointer[PublishObserver]
}

// connected counts a connection the manager established.
func (o *opsState) connected() { o.connects.Add(1) }

// timed reports a publish that started at start to the observer, when it
// succeeded, and returns err unchanged so that it wraps a return value.
func (o *opsState) timed(start time.Time, msgs int, err error) error {
	if err == nil {
		if p := o.observer.Load(); p != nil {
			(*p).ObservePublish(time.Since(start), msgs)
		}
	}
	return err
}

// SetPublishObserver makes every later confirmed publish be reported to
// obs; nil stops reporting.
func (t *Transport) SetPublishObserver(obs PublishObserver) {
	if obs == nil {
		t.ops.observer.Store(nil)
		return
	}
	t.ops.observer.Store(&obs)
}

// Connected reports whether the transport holds a live connection to a
// broker now.
func (t *Transport) Connected() bool {
	c := t.current()
	return c != nil && !c.isDead()
}

// Reconnects is how many connections were established after the first
// one since New: each is a failover to another broker of the list or a
// recovery from a loss.
func (t *Transport) Reconnects() uint64 {
	if n := t.ops.connects.Load(); n > 1 {
		return n - 1
	}
	return 0
}

// LastError is why the last connection attempt or connection failed; nil
// while connected, and before the first failure.
func (t *Transport) LastError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastErr
}
