package amqp

import (
	"net"
	"sync"
)

// maxHeld bounds what a held connection keeps before it writes anyway: a
// batch larger than this goes out in several writes, and memory stays
// bounded whatever the batch.
const maxHeld = 256 << 10

// coalescingConn lets Publish write a whole batch in one system call.
//
// amqp091-go flushes its buffered writer after every basic.publish, so a
// batch of n messages costs n writes, n trips through the loopback TCP
// stack and up to n wake-ups of the broker's reader. Between hold and
// release those writes are kept here and handed to the kernel at once.
// Writes from elsewhere in the meantime (a heartbeat, a channel method
// of a subscription) join the held bytes, so the stream's order is kept.
//
// Holds nest: two Publish calls may overlap. Every release writes what is
// held, so no caller's bytes wait for another caller to finish.
type coalescingConn struct {
	net.Conn

	mu    sync.Mutex
	holds int
	held  []byte
}

func newCoalescingConn(c net.Conn) *coalescingConn { return &coalescingConn{Conn: c} }

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds > 0 && len(c.held)+len(p) <= maxHeld {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// hold starts keeping writes back, until the matching release.
func (c *coalescingConn) hold() {
	c.mu.Lock()
	c.holds++
	c.mu.Unlock()
}

// release ends one hold and writes what is held. A failed write closes
// the connection: amqp091-go was told those bytes were written, so only
// a dead connection (and Publish's resend on the next) keeps the promise.
func (c *coalescingConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holds--
	return c.flushLocked()
}

func (c *coalescingConn) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	// Keep the array unless a huge batch grew it: the next batch reuses it.
	if cap(c.held) > maxHeld {
		c.held = nil
	} else {
		c.held = c.held[:0]
	}
	if err != nil {
		c.Conn.Close()
	}
	return err
}
