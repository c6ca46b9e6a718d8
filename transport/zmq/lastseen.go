package zmq

import (
	"sync"
	"sync/atomic"
	"time"
)

// lastSeen remembers when each subscribed endpoint last delivered a
// well-formed message, so that an operator can tell a publisher that went
// quiet from a quiet bus.
type lastSeen struct {
	mu sync.RWMutex
	m  map[string]*atomic.Int64 // endpoint -> unix nanoseconds
}

// touch records a message from endpoint now. The common case (the
// endpoint is known) takes only a read lock.
func (l *lastSeen) touch(endpoint string) {
	now := time.Now().UnixNano()
	l.mu.RLock()
	c := l.m[endpoint]
	l.mu.RUnlock()
	if c == nil {
		l.mu.Lock()
		if l.m == nil {
			l.m = map[string]*atomic.Int64{}
		}
		if c = l.m[endpoint]; c == nil {
			c = new(atomic.Int64)
			l.m[endpoint] = c
		}
		l.mu.Unlock()
	}
	c.Store(now)
}

// LastMessage returns when each subscribed endpoint last delivered a
// well-formed message; endpoints that never did are absent.
func (t *Transport) LastMessage() map[string]time.Time {
	t.seen.mu.RLock()
	defer t.seen.mu.RUnlock()
	out := make(map[string]time.Time, len(t.seen.m))
	for ep, c := range t.seen.m {
		out[ep] = time.Unix(0, c.Load())
	}
	return out
}
