package amqp

import "github.com/gofedmsg/fedmsg/internal/brokerstats"

// PublishObserver is told how long each confirmed publish took and for how
// many messages. The metrics endpoint implements it.
type PublishObserver = brokerstats.Observer

// SetPublishObserver makes every later confirmed publish be reported to
// obs; nil stops reporting.
func (t *Transport) SetPublishObserver(obs PublishObserver) { t.ops.SetObserver(obs) }

// Connected reports whether the transport holds a live connection to a
// broker now.
func (t *Transport) Connected() bool {
	t.mu.Lock()
	s := t.sess
	t.mu.Unlock()
	return s != nil && !s.isDead()
}

// Reconnects is how many connections were established after the first
// one since New: each is a broker failover or a recovery from a loss.
func (t *Transport) Reconnects() uint64 { return t.ops.Reconnects() }

// LastError is why the last connection attempt or connection failed; nil
// when none has.
func (t *Transport) LastError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastErr
}
