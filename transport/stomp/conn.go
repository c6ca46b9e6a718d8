package stomp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3/frame"
)

// Connection errors, wrapped with the broker address.
var (
	// ErrHeartBeat: the broker sent nothing for two heart-beat intervals;
	// it is considered gone.
	ErrHeartBeat = errors.New("stomp: broker heart-beat missing")
	// ErrBroker: the broker sent an ERROR frame (the message is in the text).
	ErrBroker = errors.New("stomp: broker error")
	// ErrRedeliver: the connection was ended on purpose so that ActiveMQ
	// redelivers a Nacked message of a durable subscription.
	ErrRedeliver = errors.New("stomp: reconnecting for redelivery")
	// ErrDurableUnsupported: Options.DurableName (stomp_durable_name) on a
	// broker other than ActiveMQ.
	ErrDurableUnsupported = errors.New("stomp: durable topic subscriptions need ActiveMQ")
)

// writeItem is one client frame: head (command and headers), then an
// optional receipt header, the blank line, body and NUL. The body is
// written from the caller's slice, never copied.
type writeItem struct {
	head    []byte
	receipt string
	body    []byte
}

// pending tracks the receipts of one request (a Publish attempt, or the
// SUBSCRIBE frames of one subscription).
type pending struct {
	mu        sync.Mutex
	ok        []bool
	left      int
	err       error
	done      chan struct{}
	finished  bool
	callbacks []func() // run once every receipt arrived
}

func newPending(n int) *pending {
	return &pending{ok: make([]bool, n), left: n, done: make(chan struct{})}
}

func (p *pending) confirm(i int) {
	p.mu.Lock()
	if p.finished || i < 0 || i >= len(p.ok) || p.ok[i] {
		p.mu.Unlock()
		return
	}
	p.ok[i] = true
	p.left--
	var cbs []func()
	if p.left == 0 {
		p.finished = true
		close(p.done)
		cbs = p.callbacks
	}
	p.mu.Unlock()
	for _, f := range cbs {
		f()
	}
}

func (p *pending) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished {
		p.finished = true
		p.err = err
		close(p.done)
	}
}

// then runs f once every receipt has arrived (now, if they have).
func (p *pending) then(f func()) {
	p.mu.Lock()
	if p.finished && p.err == nil {
		p.mu.Unlock()
		f()
		return
	}
	p.callbacks = append(p.callbacks, f)
	p.mu.Unlock()
}

// confirmed copies which receipts arrived into into (true stays true).
func (p *pending) confirmed(into []bool, index []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, ok := range p.ok {
		if ok {
			into[index[i]] = true
		}
	}
}

type receiptRef struct {
	p *pending
	i int
}

// conn is one CONNECTED session with one broker. A reader goroutine and a
// writer goroutine own the socket; everything else talks to them through
// writeCh and the maps under mu. A conn is never reused: when it fails
// (network, ERROR frame, missing heart-beats, Close) the transport makes a
// new one and re-subscribes there.
type conn struct {
	t         *Transport
	nc        net.Conn
	addr      string
	server    string
	flavor    flavor
	rd        *frameReader
	dr        *deadlineReader
	sendEvery time.Duration // 0 = we send no heart-beats

	writeCh chan []writeItem
	dead    chan struct{} // closed by fail
	loops   sync.WaitGroup

	mu       sync.Mutex
	failed   bool
	err      error
	nextID   uint64
	receipts map[string]receiptRef
	// topic mode: each local subscription has its own broker subscriptions
	subIDs map[string]*subscription
	ofSub  map[*subscription][]string
	// queue mode: one consumer of Options.Queue while local ones exist
	queueID    string
	queueSubs  map[*subscription]bool
	queueReady *pending
}

func (c *conn) start() {
	c.loops.Add(2)
	go c.readLoop()
	go c.writeLoop()
}

// fail ends the connection once: the socket is closed, both loops end,
// and every receipt still awaited fails with err.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.failed {
		c.mu.Unlock()
		return
	}
	c.failed = true
	c.err = err
	receipts := c.receipts
	c.receipts = nil
	c.mu.Unlock()
	close(c.dead)
	_ = c.nc.Close()
	for _, r := range receipts {
		r.p.fail(err)
	}
}

// cause is why the connection failed (nil while it is up).
func (c *conn) cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

func (c *conn) newIDLocked(prefix byte) string {
	c.nextID++
	return string(prefix) + strconv.FormatUint(c.nextID, 36)
}

// enqueue hands frames to the writer; it fails when the connection dies
// or ctx ends first.
func (c *conn) enqueue(ctx context.Context, items []writeItem) error {
	select {
	case c.writeCh <- items:
		return nil
	case <-c.dead:
		return c.cause()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request registers a receipt for each item (receipts are per connection,
// so items are stamped here) and enqueues them.
func (c *conn) request(ctx context.Context, items []writeItem, p *pending) error {
	c.mu.Lock()
	if c.failed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	for i := range items {
		id := c.newIDLocked('r')
		items[i].receipt = id
		c.receipts[id] = receiptRef{p, i}
	}
	c.mu.Unlock()
	if err := c.enqueue(ctx, items); err != nil {
		c.forget(items)
		return err
	}
	return nil
}

// forget drops the receipts of items nobody waits for any more.
func (c *conn) forget(items []writeItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range items {
		delete(c.receipts, it.receipt)
	}
}

func (c *conn) onReceipt(id string) {
	c.mu.Lock()
	r, ok := c.receipts[id]
	delete(c.receipts, id)
	c.mu.Unlock()
	if ok {
		r.p.confirm(r.i)
	}
}

func (c *conn) readLoop() {
	defer c.loops.Done()
	for {
		f, err := c.rd.read()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("%w: nothing from %s for %v", ErrHeartBeat, c.addr, c.dr.timeout)
			} else {
				err = fmt.Errorf("stomp: read from %s: %w", c.addr, err)
			}
			c.fail(err)
			return
		}
		switch f.Command {
		case frame.RECEIPT:
			c.onReceipt(f.Header.Get(frame.ReceiptId))
		case frame.MESSAGE:
			c.t.dispatch(c, f)
		case frame.ERROR:
			// RabbitMQ keeps the connection open after some ERROR frames;
			// STOMP says the session is over, so it is left either way.
			c.fail(brokerError(c.addr, f))
			return
		default:
			c.fail(protoErr("%s from %s after CONNECTED", f.Command, c.addr))
			return
		}
	}
}

func brokerError(addr string, f *frame.Frame) error {
	msg := f.Header.Get(frame.Message)
	body := string(f.Body)
	if len(body) > 300 {
		body = body[:300] + "..."
	}
	return fmt.Errorf("%w from %s: %q %q", ErrBroker, addr, msg, body)
}

func (c *conn) writeLoop() {
	defer c.loops.Done()
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var tick <-chan time.Time
	if c.sendEvery > 0 {
		tk := time.NewTicker(c.sendEvery / 2)
		defer tk.Stop()
		tick = tk.C
	}
	// A write that cannot progress for this long means a stuck broker.
	writeTimeout := max(10*time.Second, 2*c.sendEvery)
	last := time.Now()
	write := func(items []writeItem) {
		for _, it := range items {
			_, _ = bw.Write(it.head)
			if it.receipt != "" {
				_, _ = bw.WriteString("receipt:")
				_, _ = bw.WriteString(it.receipt)
				_ = bw.WriteByte('\n')
			}
			_ = bw.WriteByte('\n')
			_, _ = bw.Write(it.body)
			_ = bw.WriteByte(0)
		}
	}
	for {
		select {
		case <-c.dead:
			return
		case items := <-c.writeCh:
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			write(items)
			// Batch what is already queued into one flush (pipelining).
			for n := 0; n < 64; n++ {
				select {
				case more := <-c.writeCh:
					write(more)
					continue
				default:
				}
				break
			}
			if err := bw.Flush(); err != nil {
				c.fail(fmt.Errorf("stomp: write to %s: %w", c.addr, err))
				return
			}
			last = time.Now()
		case now := <-tick:
			if now.Sub(last) < c.sendEvery/2 {
				continue
			}
			_ = c.nc.SetWriteDeadline(now.Add(writeTimeout))
			_ = bw.WriteByte('\n')
			if err := bw.Flush(); err != nil {
				c.fail(fmt.Errorf("stomp: heart-beat to %s: %w", c.addr, err))
				return
			}
			last = now
		}
	}
}

// subscribe makes s's broker subscriptions on this connection; s becomes
// ready when the broker has receipted them.
func (c *conn) subscribe(s *subscription) error {
	if err := c.checkDurable(s); err != nil {
		return err
	}
	if c.t.o.oneConsumer() {
		return c.subscribeQueue(s)
	}
	dests := subscribeDestinations(c.flavor, s.patterns)
	p := newPending(len(dests))
	p.then(s.markReady)
	items := make([]writeItem, len(dests))
	c.mu.Lock()
	if c.failed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	var ids []string
	for i, d := range dests {
		id := c.newIDLocked('s')
		c.subIDs[id] = s
		ids = append(ids, id)
		h := []string{frame.Destination, d, frame.Id, id, frame.Ack, "auto"}
		if c.flavor == flavorActiveMQ && d == topicPrefix+">" {
			h = append(h, "selector", activeMQNoAdvisories)
		}
		items[i] = writeItem{head: encodeHead(frame.SUBSCRIBE, h...)}
	}
	c.ofSub[s] = ids
	c.mu.Unlock()
	return c.request(c.t.ctx, items, p)
}

// subscribeQueue joins s to the connection's one consumer of the queue
// (or of the durable subscription), making it when s is the first.
func (c *conn) subscribeQueue(s *subscription) error {
	c.mu.Lock()
	if c.failed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.queueSubs[s] = true
	if c.queueID != "" {
		p := c.queueReady
		c.mu.Unlock()
		p.then(s.markReady)
		return nil
	}
	c.queueID = c.newIDLocked('q')
	p := newPending(1)
	c.queueReady = p
	items := []writeItem{{head: encodeHead(frame.SUBSCRIBE, c.queueSubscribeHeaders(c.queueID)...)}}
	c.mu.Unlock()
	p.then(s.markReady)
	return c.request(c.t.ctx, items, p)
}

// checkDurable fails s when Options.DurableName is set and the broker
// is not ActiveMQ: there is no durable topic subscription elsewhere, and
// going on with a plain subscription would lose what the user asked to
// keep.
func (c *conn) checkDurable(s *subscription) error {
	if c.t.o.DurableName == "" || c.flavor == flavorActiveMQ {
		return nil
	}
	hint := "durable topic subscriptions are an ActiveMQ feature"
	if c.flavor == flavorRabbitMQ {
		hint = "on RabbitMQ use stomp_queue (a durable queue bound to every /topic/ message) instead"
	}
	err := fmt.Errorf("stomp: subscribe: %w: stomp_durable_name is set (%q) but the broker at %s is %s (server %q); %s",
		ErrDurableUnsupported, c.t.o.DurableName, c.addr, c.flavor, c.server, hint)
	c.t.o.Logger.Error("stomp: subscription refused", "key", "stomp_durable_name", "addr", c.addr, "err", err)
	s.fail(err)
	return err
}

// queuePrefetch bounds the unacknowledged messages the broker pushes,
// which is the flow control of a queue consumer.
const queuePrefetch = 256

// queueSubscribeHeaders is the SUBSCRIBE of Options.Queue. On RabbitMQ a
// "/queue/<name>" queue is consumed through a /topic/ subscription naming
// it (x-queue-name), durable and not auto-deleted: RabbitMQ then declares
// the durable queue <name> and binds it to amq.topic with "#", so every
// publish to /topic/... reaches it, and messages wait there while the
// client is away. Any other destination is subscribed as written, as
// fedmsg does (the operator arranged what feeds it).
//
// With Options.DurableName (ActiveMQ; checkDurable refused the others) it
// is one durable subscription to every topic, named DurableName under
// the connection's client-id of the same name. One, whatever the
// patterns, so that its name never depends on them: a change of patterns
// resumes the same subscription instead of leaving one behind that
// ActiveMQ would fill for ever (or resuming a stale one later). The
// patterns filter in-process, as with a queue.
func (c *conn) queueSubscribeHeaders(id string) []string {
	q := c.t.o.Queue
	h := []string{frame.Id, id, frame.Ack, "client-individual"}
	if name := c.t.o.DurableName; name != "" {
		return append(h, frame.Destination, topicPrefix+">", "activemq.subscriptionName", name,
			"selector", activeMQNoAdvisories, "activemq.prefetchSize", strconv.Itoa(queuePrefetch))
	}
	switch c.flavor {
	case flavorRabbitMQ:
		if name, ok := rabbitQueueName(q); ok {
			return append(h, frame.Destination, topicPrefix+"#", "x-queue-name", name,
				"durable", "true", "auto-delete", "false",
				"prefetch-count", strconv.Itoa(queuePrefetch))
		}
		return append(h, frame.Destination, q, "prefetch-count", strconv.Itoa(queuePrefetch))
	case flavorActiveMQ:
		return append(h, frame.Destination, q, "activemq.prefetchSize", strconv.Itoa(queuePrefetch))
	}
	return append(h, frame.Destination, q)
}

// rabbitQueueName returns <name> of a RabbitMQ "/queue/<name>".
func rabbitQueueName(q string) (string, bool) {
	name, ok := cutPrefix(q, "/queue/")
	return name, ok && name != ""
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

// unsubscribe ends s's broker subscriptions on this connection (the queue
// consumer when s was its last user). Messages already pushed for them
// and not settled stay unacknowledged until the connection ends; then the
// broker redelivers them.
func (c *conn) unsubscribe(s *subscription) {
	c.mu.Lock()
	if c.failed {
		c.mu.Unlock()
		return
	}
	var ids []string
	if c.t.o.oneConsumer() {
		// The consumer of a durable subscription is closed (UNSUBSCRIBE
		// without activemq.subscriptionName), never the subscription
		// removed: ActiveMQ keeps collecting its messages for the next
		// start.
		delete(c.queueSubs, s)
		if len(c.queueSubs) == 0 && c.queueID != "" {
			ids = append(ids, c.queueID)
			c.queueID = ""
		}
	} else {
		ids = c.ofSub[s]
		delete(c.ofSub, s)
		for _, id := range ids {
			delete(c.subIDs, id)
		}
		if c.flavor == flavorRabbitMQ {
			// RabbitMQ answers a message already on its way to a
			// subscription it has just cancelled with ERROR
			// "Subscription not found" and closes the connection, which
			// loses what other subscriptions were sent meanwhile (seen in
			// the conformance suite about once in 40 runs). The
			// subscription's exclusive queue goes with the connection
			// instead; until then its messages are dropped here, as they
			// match no subscription id.
			ids = nil
		}
	}
	c.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	items := make([]writeItem, len(ids))
	for i, id := range ids {
		items[i] = writeItem{head: encodeHead(frame.UNSUBSCRIBE, frame.Id, id)}
	}
	_ = c.enqueue(c.t.ctx, items)
}

// disconnect ends the session politely (DISCONNECT, awaiting its receipt
// for at most wait) so the broker requeues unsettled messages at once.
func (c *conn) disconnect(wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	p := newPending(1)
	if err := c.request(ctx, []writeItem{{head: encodeHead(frame.DISCONNECT)}}, p); err == nil {
		select {
		case <-p.done:
		case <-ctx.Done():
		}
	}
	c.fail(fmt.Errorf("stomp: connection to %s closed", c.addr))
}
