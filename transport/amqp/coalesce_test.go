package amqp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// countingConn records every Write that reaches it, as the kernel would
// see them, and can be made to fail.
type countingConn struct {
	net.Conn // nil: only Write and Close are used

	mu      sync.Mutex
	writes  [][]byte
	failing error
	closed  bool
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failing != nil {
		return 0, c.failing
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *countingConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *countingConn) snapshot() (writes [][]byte, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.closed
}

func write(t *testing.T, c *coalescingConn, s string) {
	t.Helper()
	if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

// Between hold and release writes are kept and reach the connection in one
// Write, in order; outside a hold every Write goes straight through.
func TestCoalescingConnOneWritePerHold(t *testing.T) {
	under := &countingConn{}
	c := newCoalescingConn(under)

	write(t, c, "heartbeat")
	if w, _ := under.snapshot(); len(w) != 1 {
		t.Fatalf("unheld Write: %d writes below, want 1", len(w))
	}

	c.hold()
	for _, frame := range []string{"publish1", "header1", "body1", "publish2", "header2", "body2"} {
		write(t, c, frame)
	}
	if w, _ := under.snapshot(); len(w) != 1 {
		t.Fatalf("held frames reached the connection before release: %q", w)
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	w, _ := under.snapshot()
	if len(w) != 2 || string(w[1]) != "publish1header1body1publish2header2body2" {
		t.Fatalf("writes below %q, want the heartbeat then the batch in one write", w)
	}

	// A release with nothing held writes nothing.
	c.hold()
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if w, _ := under.snapshot(); len(w) != 2 {
		t.Errorf("an empty release wrote: %q", w)
	}
}

// Overlapping holds (two Publish calls at once): every release writes what
// is held, so neither caller's bytes wait for the other to finish.
func TestCoalescingConnNestedHolds(t *testing.T) {
	under := &countingConn{}
	c := newCoalescingConn(under)
	c.hold()
	write(t, c, "a")
	c.hold()
	write(t, c, "b")
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if w, _ := under.snapshot(); len(w) != 1 || string(w[0]) != "ab" {
		t.Fatalf("after the inner release: %q, want [ab]", w)
	}
	write(t, c, "c") // still held by the outer hold
	if w, _ := under.snapshot(); len(w) != 1 {
		t.Fatalf("a write under the outer hold went through: %q", w)
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	write(t, c, "d") // no hold left: straight through
	if w, _ := under.snapshot(); len(w) != 3 || string(w[1]) != "c" || string(w[2]) != "d" {
		t.Fatalf("writes below %q, want [ab c d]", w)
	}
}

// A held batch larger than maxHeld is written in several writes, in order,
// and memory stays bounded.
func TestCoalescingConnBoundedHold(t *testing.T) {
	under := &countingConn{}
	c := newCoalescingConn(under)
	chunk := bytes.Repeat([]byte("x"), maxHeld/4+1)
	c.hold()
	var want []byte
	for i := range 10 {
		p := append(bytes.Clone(chunk), byte('0'+i))
		want = append(want, p...)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		if len(c.held) > maxHeld {
			t.Fatalf("%d bytes held, over maxHeld %d", len(c.held), maxHeld)
		}
	}
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	w, _ := under.snapshot()
	if len(w) < 2 || len(w) > 10 {
		t.Errorf("%d writes below for 10 chunks of maxHeld/4", len(w))
	}
	if got := bytes.Join(w, nil); !bytes.Equal(got, want) {
		t.Errorf("the stream below is not the bytes written, in order (%d vs %d bytes)", len(got), len(want))
	}
}

// A release whose write fails closes the connection: amqp091-go was told
// the held bytes were written, so only a dead connection (whose confirms
// then fail as a loss, and the messages are sent again) keeps the promise.
func TestCoalescingConnFailedReleaseCloses(t *testing.T) {
	broken := errors.New("connection reset by peer")
	under := &countingConn{}
	c := newCoalescingConn(under)
	c.hold()
	write(t, c, "publish")
	under.mu.Lock()
	under.failing = broken
	under.mu.Unlock()
	if err := c.release(); !errors.Is(err, broken) {
		t.Fatalf("release = %v, want the write's error", err)
	}
	if _, closed := under.snapshot(); !closed {
		t.Error("the connection stays open after held bytes were lost")
	}
	// What was held is gone, not written again later in the stream.
	under.mu.Lock()
	under.failing = nil
	under.mu.Unlock()
	c.hold()
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if w, _ := under.snapshot(); len(w) != 0 {
		t.Errorf("lost bytes were written after the failure: %q", w)
	}
}

// The same over a real connection: a net.Pipe whose reader sees one
// Write per held batch, and a closed peer making release fail and close.
func TestCoalescingConnOverPipe(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	defer c.Close()
	reads := make(chan []byte, 4)
	go func() {
		defer close(reads)
		buf := make([]byte, 4096)
		for {
			n, err := server.Read(buf)
			if err != nil {
				return
			}
			reads <- bytes.Clone(buf[:n])
		}
	}()
	c.hold()
	write(t, c, "one")
	write(t, c, "two")
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	// net.Pipe delivers each Write to Reads without merging writes, so a
	// single read of both frames means a single Write.
	if got := <-reads; string(got) != "onetwo" {
		t.Fatalf("the peer read %q, want onetwo in one read", got)
	}
	server.Close()
	<-reads // the reader ends
	c.hold()
	write(t, c, "three")
	if err := c.release(); err == nil {
		t.Fatal("release to a closed peer succeeded")
	}
	// net.Pipe: io.EOF while only the peer closed, io.ErrClosedPipe once
	// this end is closed too.
	if _, err := client.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("after a failed release the connection is still open: Write = %v", err)
	}
}
